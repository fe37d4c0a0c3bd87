"""A moto S3 server on loopback: s3fs/aiobotocore need a real HTTP endpoint, not ``mock_aws``."""

from __future__ import annotations

import itertools
import logging
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

logger = logging.getLogger(__name__)

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_bucket_counter = itertools.count()


class MotoServer:
    """One ``ThreadedMotoServer`` on 127.0.0.1 with a free port, plus bucket helpers."""

    host: str
    port: int
    endpoint_url: str

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._client: Any = None

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        # NOTE: werkzeug logs every request to stderr unless its logger is configured.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{self.host}:{self.port}"
        logger.debug("moto server listening on %s", self.endpoint_url)
        return self

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client for this server (or ``endpoint_url``, e.g. a proxy in front of it).

        Extra keyword arguments go to ``botocore.config.Config`` (e.g. ``retries``).
        """
        import boto3
        from botocore.config import Config

        if endpoint_url is None and not config and self._client is not None:
            return self._client
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or self.endpoint_url,
            region_name=REGION,
            config=Config(**config) if config else None,
            **CREDENTIALS,
        )
        if endpoint_url is None and not config:
            self._client = client
        return client

    def new_bucket(self, name: str | None = None, *, versioned: bool = False) -> str:
        """Create a fresh bucket (a unique name unless ``name`` is given) and return its name;
        ``versioned`` enables S3 object versioning on it."""
        if name is None:
            name = f"test-{next(_bucket_counter)}-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=name)
        if versioned:
            config = {"Status": "Enabled"}
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration=config)
        return name

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
