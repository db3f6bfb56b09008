from gemmalog.queries._connect import VIEWS, QueryError, Source, connect, freeze, resolve
