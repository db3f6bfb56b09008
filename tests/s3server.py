"""A real S3-compatible server on 127.0.0.1 for the remote tests: moto's standalone server
(the one s3fs's own test suite runs against), spoken to over HTTP by s3fs and boto like any
other endpoint, with signed requests checked against the one IAM user it holds.

Debian 12 ships no SeaweedFS or MinIO package; moto's server is installed by the dev extra.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Requests the server takes without authentication: the four that create the user, its key,
#: its policy and the bucket. Every request after them must be signed by that user's key.
_SETUP_REQUESTS = 4
BUCKET = "gemmalog-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_binary() -> str | None:
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server")


@dataclass
class S3Server:
    """One running server: its endpoint, the credentials it accepts, its process."""

    endpoint: str
    key_id: str
    secret: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def requests(self) -> list[str]:
        """The requests the server has answered so far, one access-log line each."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if '] "' in line and " HTTP/1.1" in line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start(log: Path) -> S3Server:
    """Start a server, create its user, key, policy and bucket; wait until it answers."""
    import boto3

    binary = server_binary()
    if binary is None:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_REQUESTS))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=out, stderr=out
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"moto_server did not start: {log.read_text()[-2000:]}"
                ) from None
            time.sleep(0.1)
    anonymous = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "setup",
    }
    iam = boto3.client("iam", **anonymous)
    iam.create_user(UserName="gemmalog")
    key = iam.create_access_key(UserName="gemmalog")["AccessKey"]
    iam.put_user_policy(
        UserName="gemmalog",
        PolicyName="all",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
    )
    server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process, log)
    server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    return server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One server for the whole session (started on first use)."""
    if server_binary() is None:
        pytest.skip("moto_server is not installed (pip install 'gemmalog[dev]')")
    server = start(tmp_path_factory.mktemp("s3") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh prefix in the server's bucket, with the server's endpoint and credentials set."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
