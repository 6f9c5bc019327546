"""The servers behind Dapr's state store and pub/sub, on free loopback ports with their
data in the test's workdir, for each backend profile (TASK_PLATFORM_BACKEND): `redis`
(one Redis for both, the default) or `postgres-kafka` (PostgreSQL and Apache Kafka)."""

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from harness.processes import ManagedProcess, free_port, wait_until
from harness.tools import provided

START_TIMEOUT = 60.0
# Partitions of every topic (see Kafka._server_properties).
PARTITIONS = 128


def postgres_bin_dir() -> Path:
    """Where initdb, postgres, pg_isready and psql live (all of one release): beside the
    initdb on PATH, after its symlinks, else the newest /usr/lib/postgresql/<major>/bin
    (Debian keeps the server there and puts only its client wrappers on PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if debian:
        return Path(debian[-1])
    raise RuntimeError(
        "MISSING: the PostgreSQL server (initdb, postgres); Debian: apt-get install postgresql"
    )


def java_binary() -> str:
    """JAVA_HOME's java when it is set (as Kafka's own scripts do), else PATH's."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java") or "java"


def _not_as_root(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root. As root, run them as an ordinary user
    (postgres's uid, else nobody's) in a user namespace that maps that user to root:
    inside, the root-owned workdir is that user's own, so nobody else needs a way into
    pytest's 0700 temp dirs (which `runuser -u postgres` would, and a chown of the data);
    outside, every file the server writes is root's, so the test's cleanup removes it."""
    if os.geteuid() != 0:
        return command
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = pwd.getpwnam("nobody")
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare, "--user", f"--map-user={user.pw_uid}", f"--map-group={user.pw_gid}", "--",
        *command,
    ]  # fmt: skip


def _alive_or_fail(process: ManagedProcess) -> None:
    """Fail at once, with its log, when a server that is being waited for has exited."""
    if not process.running:
        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")


@dataclass
class Postgres:
    workdir: Path
    database: str = "task_platform"
    user: str = "postgres"
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.data_dir = self.workdir / "postgres"
        self.process = ManagedProcess(
            "postgres",
            _not_as_root([
                str(self.bin_dir / "postgres"),
                "-D", str(self.data_dir),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                # TCP only: a socket path in a deep temp dir can pass the 107-byte limit
                # of unix sockets, and the default (/var/run/postgresql) is the system's.
                "-c", "unix_socket_directories=",
                # Speed: only an OS crash can lose data without fsync; a killed postgres
                # loses nothing it acknowledged (its writes are in the kernel already).
                "-c", "fsync=off",
                "-c", "shared_buffers=32MB",
            ]),
            self.workdir / "postgres.log",
        )  # fmt: skip

    @property
    def connection_string(self) -> str:
        """libpq's keyword form, as Dapr's state.postgresql takes it (pgx reads
        `database`; psql wants `dbname`, see query())."""
        return (
            f"host=127.0.0.1 port={self.port} user={self.user} "
            f"password={self.password} database={self.database}"
        )

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start it, creating the cluster and the database on the first start."""
        first_start = not self.data_dir.exists()
        if first_start:
            self._initdb()
        self.process.start()
        wait_until(self._accepts_connections, timeout=timeout, what="postgres")
        if first_start:
            self.query(f'CREATE DATABASE "{self.database}"', database="postgres")

    def stop(self, timeout: float = 30.0) -> None:
        """A fast shutdown: SIGINT to the postmaster, which disconnects its clients and
        writes a checkpoint. SIGTERM, what ManagedProcess.stop() sends, asks for a smart
        shutdown, which waits for the clients to leave: with a client connected (a
        sidecar's pool), it waited out stop()'s 10 s and ended in a SIGKILL."""
        if self.process.running:
            os.kill(self.process.pid, signal.SIGINT)
            wait_until(lambda: not self.process.running, timeout=timeout, what="postgres to stop")
        self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL to postgres and its backends: the next start() recovers from the WAL."""
        self.process.kill()

    def query(self, sql: str, database: str | None = None) -> str:
        """Run SQL with psql and return its unaligned, tuples-only output."""
        out = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                f"host=127.0.0.1 port={self.port} user={self.user} "
                f"dbname={database or self.database}",
                "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )  # fmt: skip
        return out.stdout

    def _initdb(self) -> None:
        password_file = self.workdir / "postgres-password"
        password_file.write_text(self.password)
        with (self.workdir / "postgres.log").open("ab") as log:
            subprocess.run(
                _not_as_root([
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", self.user,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--locale=C", "--encoding=UTF8",
                    "--no-sync", "--no-instructions",
                ]),
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        password_file.unlink()

    def _accepts_connections(self) -> bool:
        _alive_or_fail(self.process)
        ready = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"), "-q",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres",
            ],
            check=False,
        )  # fmt: skip
        return ready.returncode == 0


# Kafka logs through log4j2, which prints only errors without a configuration. Its
# configuration dumps (hundreds of lines per component) are left out.
_KAFKA_LOG4J2 = """\
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def kafka_broker_ports(port: int) -> list[int] | None:
    """The ports of the brokers the Kafka broker at 127.0.0.1:`port` knows, by a
    Metadata request (v4: the oldest that Kafka 4 still serves); None while it does not
    answer. A broker lists itself once it has registered with the controller and caught
    up with the metadata log: ready for clients."""
    client_id = b"harness"
    # Header: api key 3 (Metadata), version 4, correlation id, client id. Body: no
    # topics (an empty list, not null, which would mean all of them), create none.
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    request += struct.pack(">i?", 0, False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive(sock, 4))
            response = _receive(sock, size)
        # Correlation id, throttle time, then [node id, host, port, rack] per broker.
        (count,) = struct.unpack_from(">i", response, 8)
        offset, ports = 12, []
        for _ in range(count):
            (host_length,) = struct.unpack_from(">h", response, offset + 4)
            offset += 6 + host_length
            (broker_port, rack_length) = struct.unpack_from(">ih", response, offset)
            offset += 6 + max(rack_length, 0)
            ports.append(broker_port)
    except (OSError, struct.error):
        return None
    return ports


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


@dataclass
class Kafka:
    """One KRaft node, broker and controller in one process."""

    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.libs = provided("TASK_PLATFORM_KAFKA", "ensure-kafka.sh") / "libs"
        self.data_dir = self.workdir / "kafka"
        self.config_file = self.workdir / "kafka-server.properties"
        self.log4j2_file = self.workdir / "kafka-log4j2.properties"
        self.config_file.write_text(self._server_properties())
        self.log4j2_file.write_text(_KAFKA_LOG4J2)
        self.process = ManagedProcess(
            "kafka",
            self._java("kafka.Kafka", str(self.config_file)),
            self.workdir / "kafka.log",
        )

    @property
    def brokers(self) -> str:
        """The bootstrap servers a client (Dapr's pubsub.kafka `brokers`) is given."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start it, formatting its storage on the first start (KRaft needs a cluster
        id and the bootstrap metadata written before a node can start)."""
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()
        self.process.start()
        wait_until(self._serves_clients, timeout=timeout, what="kafka")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: Kafka's controlled shutdown, which flushes and closes its logs."""
        self.process.stop(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: the next start() recovers its logs from the last flush."""
        self.process.kill()

    def java_tool(self, main_class: str, *args: str) -> list[str]:
        """A command that runs one of the Kafka tools in its jars (ConsoleProducer,
        consumer.ConsoleConsumer, TopicCommand, ... of org.apache.kafka.tools), logging
        errors only (log4j2 without a configuration)."""
        return self._java(main_class, *args, logging=False)

    def _java(self, main_class: str, *args: str, logging: bool = True) -> list[str]:
        return [
            java_binary(),
            # Small and quick to start (measured: 280 MiB RSS, not 440, and 2-3 s to
            # start, not 5, against Kafka's own -Xmx1g and G1): a heap that starts
            # small, the serial collector, no JIT past C1, and no
            # /tmp/hsperfdata_<user>/<pid> file (which a SIGKILL would leave behind).
            "-Xms32m", "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            # IPv4 sockets: on a dual-stack socket the listener reads [::ffff:127.0.0.1].
            "-Djava.net.preferIPv4Stack=true",
            *([f"-Dlog4j2.configurationFile={self.log4j2_file}"] if logging else []),
            "-cp", str(self.libs / "*"),
            main_class,
            *args,
        ]  # fmt: skip

    def _server_properties(self) -> str:
        broker, controller = f"127.0.0.1:{self.port}", f"127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics appear when Dapr first publishes or subscribes to them, with this
            # many partitions: a partition's messages are handed over one at a time, and
            # Dapr's outbox relay waits a second on each (components/postgres-kafka).
            "auto.create.topics.enable": "true",
            "num.partitions": str(PARTITIONS),
            # One broker: every internal topic has one replica, of one partition (50 by
            # default, each with its files, slow to create when the first group forms).
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            # A consumer group forms at once instead of after 3 s of waiting for more
            # members.
            "group.initial.rebalance.delay.ms": "0",
            # A node restarted after a kill() cannot register until the controller has
            # timed out the session of its previous life (9 s by default).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format_storage(self) -> None:
        # A cluster id is a UUID in URL-safe base64; one that starts with "-" would read
        # as an option on the command line (Kafka's own ids avoid that too).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with (self.workdir / "kafka.log").open("ab") as log:
            subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format",
                    "--cluster-id", cluster_id, "--config", str(self.config_file),
                ),
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _serves_clients(self) -> bool:
        _alive_or_fail(self.process)
        return self.port in (kafka_broker_ports(self.port) or [])


@dataclass
class Redis:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.process = ManagedProcess(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            self.workdir / "redis.log",
        )  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.process.start()
        wait_until(lambda: redis_ping(self.port), timeout=timeout, what="redis-server")

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def stream_entries(self, stream: str, needle: str) -> list[str]:
        """The lines of XRANGE over `stream` that hold `needle` (each entry's CloudEvent
        is one line): what the broker itself keeps, whoever consumed it."""
        entries = subprocess.run(
            ["redis-cli", "-p", str(self.port), "XRANGE", stream, "-", "+"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        return [entry for entry in entries if needle in entry]


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Server(Protocol):
    process: ManagedProcess

    def start(self, timeout: float = START_TIMEOUT) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


BACKENDS = ("redis", "postgres-kafka")


def selected_backend() -> str:
    chosen = os.environ.get("TASK_PLATFORM_BACKEND") or "redis"
    if chosen not in BACKENDS:
        raise ValueError(f"TASK_PLATFORM_BACKEND must be one of {BACKENDS}, not {chosen!r}")
    return chosen


class Backend:
    """The servers of one profile: the state store's and the broker's (one Redis serves
    both), and the component metadata that points Dapr at them."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        # The Redis of the redis profile, for tests of what only Redis does.
        self.redis: Redis | None = None
        # state.postgresql creates its tables when its sidecar starts, and two sidecars
        # doing it at once race: one exits ("failed to ensure metadata table exists").
        # In Kubernetes it is restarted; here the first one starts alone.
        self.first_sidecar_migrates = name == "postgres-kafka"
        # The apps' settings the profile needs. Kafka adds its fetch and group latency to
        # the outbox relay's second: at the default lag target (1.3 s) task-api held
        # and refused writes that Redis takes at once.
        self.app_env = {} if name == "redis" else {"TASK_API_EVENT_LAG_TARGET_SECONDS": "3"}
        if name == "redis":
            redis = self.redis = Redis(workdir)
            self.state_store: Server = redis
            self.broker: Server = redis
            self.addresses = {"redisHost": f"127.0.0.1:{redis.port}"}
        else:
            postgres, kafka = Postgres(workdir), Kafka(workdir)
            self.state_store, self.broker = postgres, kafka
            self.addresses = {
                "connectionString": postgres.connection_string,
                "brokers": kafka.brokers,
            }

    @property
    def servers(self) -> list[Server]:
        if self.state_store is self.broker:
            return [self.state_store]
        return [self.state_store, self.broker]

    def start(self) -> None:
        for server in self.servers:
            server.start()


def only_on_redis(why: str) -> pytest.MarkDecorator:
    """A mark for a test of Redis' own behaviour, skipped on the other profiles."""
    return pytest.mark.skipif(selected_backend() != "redis", reason=f"Redis only: {why}")


def only_on_postgres_kafka(why: str) -> pytest.MarkDecorator:
    """A mark for a test of what only the postgres-kafka profile does."""
    return pytest.mark.skipif(
        selected_backend() != "postgres-kafka", reason=f"postgres-kafka only: {why}"
    )
