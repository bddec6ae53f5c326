"""ElastiCache-style AUTH: the token comes from Secrets Manager (moto), never from the URL, and a
real ``redis-server --requirepass`` accepts the cache only with it."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from querio.adapters.redis_cache import RedisCache
from querio.errors import ConfigurationError
from querio.wiring import build_cache, redis_auth_token
from tests.fixtures.aws_events import aws  # noqa: F401
from tests.fixtures.redis import _cluster_ports
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[tuple[str, str]]:
    server = shutil.which("redis-server")
    if not server:
        pytest.skip("redis-server not installed")
    token = secrets.token_hex(32)
    (port,) = _cluster_ports(1)
    subprocess.run([server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", token, "--save", "",
                    "--appendonly", "no", "--daemonize", "yes", "--dir", str(tmp_path),
                    "--logfile", str(tmp_path / "log")], check=True)
    client = redis.Redis(host="127.0.0.1", port=port, password=token, socket_timeout=1)
    for _ in range(50):
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                break
        time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0", token
    finally:  # redis-cli returns at once; redis-py retries the link the shutdown drops
        subprocess.run([shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(port), "-a", token,
                        "--no-auth-warning", "shutdown", "nosave"], capture_output=True, timeout=10, check=False)


def test_token_from_secrets_manager_opens_a_password_protected_redis(aws: Any, tmp_path: Path,  # noqa: F811
                                                                     protected_redis: tuple[str, str]) -> None:
    from querio.adapters import aws_clients

    url, token = protected_redis
    arn = aws_clients.secretsmanager().create_secret(Name="redis-auth", SecretString=token)["ARN"]
    redis_auth_token.cache_clear()
    settings = make_settings(tmp_path, "postgresql://unused", redis_url=url, redis_auth_secret_arn=arn)
    cache = build_cache(settings)
    cache.set("k", b"v", 30)
    assert cache.get("k") == b"v" and cache.errors == 0
    # without the token the same server refuses: the cache degrades to misses, never raises
    anonymous = RedisCache(url)
    assert anonymous.get("k") is None and anonymous.errors == 1
    redis_auth_token.cache_clear()


def test_missing_or_empty_secret_is_a_configuration_error_naming_the_setting(aws: Any) -> None:  # noqa: F811
    from querio.adapters import aws_clients

    redis_auth_token.cache_clear()
    with pytest.raises(ConfigurationError, match="QUERIO_REDIS_AUTH_SECRET_ARN"):
        redis_auth_token("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
    arn = aws_clients.secretsmanager().create_secret(Name="blank", SecretString="  ")["ARN"]
    with pytest.raises(ConfigurationError, match="QUERIO_REDIS_AUTH_SECRET_ARN: the secret is empty"):
        redis_auth_token(arn)
    redis_auth_token.cache_clear()
