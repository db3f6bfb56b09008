"""``python -m gemmalog`` runs the ``gemmalog`` command."""

from gemmalog.cli import main

if __name__ == "__main__":
    main()
