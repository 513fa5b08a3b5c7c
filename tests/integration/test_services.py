"""The test-service helpers start real services, hand out working URLs and leave nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa

from tests.support import services
from tests.support.services import RedisServer, S3Server

pytestmark = pytest.mark.integration


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _query_one(url: str, sql: str) -> object:
    """Run ``sql`` in its own committed transaction; return the single value if it returns rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql))
            return result.scalar_one() if result.returns_rows else None
    finally:
        engine.dispose()


# Postgres ------------------------------------------------------------------------------------------


def test_postgres_fixture_accepts_queries(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    assert _query_one(pg_url, "SELECT 40 + 2") == 42


def test_existing_server_gets_a_fresh_database_that_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGEMILL_TEST_DATABASE_URL", raising=False)
    user = services._existing_server_user("127.0.0.1", 5432)
    if user is None:
        pytest.skip("no Postgres server on 127.0.0.1:5432 (the spawned-cluster test covers this machine)")

    with services.postgres_url() as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("pagemill_test_")
        # A connection left open must not stop the drop at the end.
        engine = sa.create_engine(url)
        leftover = engine.connect()
        leftover.execute(sa.text("CREATE TABLE t (id int)"))

    with psycopg.connect(f"host=127.0.0.1 port=5432 user={user} dbname=postgres") as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)
    leftover.invalidate()
    engine.dispose()


def test_spawned_postgres_cluster_works_and_is_removed() -> None:
    started = time.monotonic()
    with services.postgres_url(spawn=True) as url:
        elapsed = time.monotonic() - started
        port = sa.make_url(url).port
        assert port is not None and port != 5432
        assert str(_query_one(url, "SHOW server_version")).split(".")[0].isdigit()
        assert _query_one(url, "SELECT current_setting('fsync')") == "off"
    assert elapsed < 20, f"spawning a cluster took {elapsed:.1f}s"
    assert not services.port_open("127.0.0.1", port)


def test_spawned_postgres_restarts_on_the_same_port() -> None:
    with services.postgres_server() as server:
        url = server.url()
        _query_one(url, "CREATE TABLE kept (id int)")
        server.restart()
        assert server.url() == url
        assert _query_one(url, "SELECT count(*) FROM kept") == 0
        root = server.root
    assert not root.exists()


# Redis ---------------------------------------------------------------------------------------------


def test_redis_fixture_set_get(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("pagemill:test", b"value")
        assert client.get("pagemill:test") == b"value"
    finally:
        client.close()


def test_redis_restart_keeps_the_same_url_working(private_redis: RedisServer) -> None:
    url = private_redis.url
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.set("before", b"1")
        private_redis.restart()
        assert private_redis.url == url
        # The old client reconnects by itself; the data is gone like after a crash without persistence.
        assert client.get("before") is None
        client.set("after", b"2")
        assert client.get("after") == b"2"
    finally:
        client.close()


def test_redis_kill9_then_start(private_redis: RedisServer) -> None:
    private_redis.kill9()
    assert not services.port_open("127.0.0.1", private_redis.port)
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    try:
        assert client.ping()
    finally:
        client.close()


# S3 ------------------------------------------------------------------------------------------------


def test_s3_server_accepts_boto3_over_http(s3: S3Server) -> None:
    assert s3.endpoint_url.startswith("http://127.0.0.1:")
    client = s3.client()
    try:
        client.create_bucket(Bucket="pagemill-services-test")
        client.put_object(Bucket="pagemill-services-test", Key="a/b.txt", Body=b"hello s3")
        body = client.get_object(Bucket="pagemill-services-test", Key="a/b.txt")["Body"]
        assert body.read() == b"hello s3"
        body.close()
        names = [b["Name"] for b in client.list_buckets()["Buckets"]]
        assert "pagemill-services-test" in names
    finally:
        client.close()


# Processes -----------------------------------------------------------------------------------------

# A parent that prints, starts a child of its own and sleeps: enough to test logs, children and stopping.
_PARENT_WITH_CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print("started child", child.pid, flush=True)
    time.sleep(120)
    """
)


def test_process_handle_logs_children_and_stop() -> None:
    proc = services.start_process([sys.executable, "-c", _PARENT_WITH_CHILD], name="parent")
    try:
        match = services.wait_for_log(proc, r"started child (\d+)", timeout=10)
        child = int(match.group(1))
        assert proc.child_pids() == [child]
        assert set(proc.group_pids()) == {proc.pid, child}
    finally:
        rc = proc.stop(timeout=5)
    assert rc == -signal.SIGTERM
    # The child is in the same process group, so it went down with the parent.
    assert not _pid_alive(child)


def test_process_stop_escalates_to_sigkill() -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
        "time.sleep(60)"
    )
    proc = services.start_process([sys.executable, "-c", stubborn], name="stubborn")
    services.wait_for_log(proc, "up", timeout=10)
    started = time.monotonic()
    assert proc.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_process_kill9_single_child_and_group() -> None:
    proc = services.start_process([sys.executable, "-c", _PARENT_WITH_CHILD], name="parent")
    try:
        child = int(services.wait_for_log(proc, r"started child (\d+)", timeout=10).group(1))
        proc.kill9(child)
        services.wait_until(lambda: proc.child_pids() == [], 5, "the killed child to disappear")
        assert proc.is_running()
        proc.kill9()
        assert proc.returncode == -signal.SIGKILL
    finally:
        proc.stop()


def test_wait_for_log_fails_fast_when_the_process_exits() -> None:
    proc = services.start_process([sys.executable, "-c", "print('bye')"], name="short")
    try:
        with pytest.raises(services.ServiceError, match="bye"):
            services.wait_for_log(proc, "never printed", timeout=10)
    finally:
        proc.stop()


def test_wait_http_ok() -> None:
    port = services.free_port()
    server = services.start_process(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], name="http.server"
    )
    try:
        services.wait_http_ok(f"http://127.0.0.1:{port}/", timeout=10, handle=server)
    finally:
        server.stop()


def test_children_die_when_the_test_process_is_killed(tmp_path: Path) -> None:
    # Stand-in for pytest being SIGKILLed: a process that starts a service through the helpers, then dies
    # without running any cleanup. The parent-death signal must take the service down.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(services.REPO_ROOT)!r})
        from tests.support import services
        proc = services.start_process(
            [sys.executable, "-c", "import time; time.sleep(120)"],
            name="orphan",
            log_path=Path({str(tmp_path / "orphan.log")!r}),
        )
        print(proc.pid, flush=True)
        time.sleep(120)
        """
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        orphan = int(runner.stdout.readline())
        assert _pid_alive(orphan)
        runner.kill()
        runner.wait(5)
        services.wait_until(lambda: not _pid_alive(orphan), 5, "the orphan to die with its parent")
    finally:
        runner.kill()
        runner.wait(5)
        if runner.stdout is not None:
            runner.stdout.close()


@pytest.mark.skipif(
    not (services.REPO_ROOT / "pagemill" / "__main__.py").exists(), reason="the pagemill CLI is not there yet"
)
def test_pagemill_process_runs_the_cli(tmp_path: Path) -> None:
    proc = services.pagemill_process(["--help"], services.embedded_env(tmp_path), name="pagemill --help")
    try:
        assert proc.wait(30) == 0, proc.log_text()
        for command in ("worker", "api", "migrate"):
            assert command in proc.log_text()
    finally:
        proc.stop()


def test_pagemill_api_answers_liveness(tmp_path: Path) -> None:
    with services.pagemill_api(services.embedded_env(tmp_path)) as (api, base_url):
        with urllib.request.urlopen(f"{base_url}/api/v1/health/live", timeout=5) as response:
            assert response.status == 200
        assert api.is_running()
    assert not api.is_running()


def test_pagemill_worker_gets_ready_with_its_pool(pg_url: str, redis_url: str, s3: S3Server) -> None:
    env = services.distributed_env(pg_url, redis_url, s3)
    with services.pagemill_worker(env, concurrency=2) as worker:
        assert len(worker.child_pids(recursive=False)) == 2
    assert worker.group_pids() == []


# Environment builders ------------------------------------------------------------------------------


def test_env_builders(tmp_path: Path) -> None:
    s3 = S3Server(endpoint_url="http://127.0.0.1:9")
    env = services.distributed_env("postgresql+psycopg://u@h/db", "redis://h:1/0", s3)
    assert env["PAGEMILL_STORAGE__BACKEND"] == "s3"
    assert env["PAGEMILL_STORAGE__S3_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert env["PAGEMILL_DATABASE__URL"].startswith("postgresql+psycopg://")
    assert env["PAGEMILL_BROKER__URL"] == "redis://h:1/0"
    assert services.embedded_env(tmp_path) == {"PAGEMILL_DATA_DIR": str(tmp_path)}
    assert all(isinstance(value, str) for value in env.values())


def test_redis_falls_back_to_a_shared_server(monkeypatch: pytest.MonkeyPatch) -> None:
    if not services._redis_ping(6379):
        pytest.skip("nothing answers on 127.0.0.1:6379")
    # Pretend redis-server is not installed: the helper must borrow a numbered database and flush it.
    monkeypatch.setattr(services, "_find_binary", lambda name, extra_globs=(): None)
    monkeypatch.setattr(services, "_ensure_system_deps", lambda: None)
    with services.redis_server() as server:
        assert not server.restartable
        assert server.port == 6379 and 1 <= server.db <= 15
        client = redis.Redis.from_url(server.url)
        client.set("pagemill:borrowed", b"1")
    try:
        assert client.get("pagemill:borrowed") is None
    finally:
        client.close()
