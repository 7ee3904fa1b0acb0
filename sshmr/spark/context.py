"""The SparkContext of a ``--engine spark`` run: pyspark and Java checked first (one line
naming the fix each), the master and Spark settings made from the run's policies, and a
context this process already has reused when it fits.

Policies mapped to Spark: ``max_retries`` N -> N+1 task failures (``local[C,N+1]``, or
``spark.task.maxFailures``); ``max_retries`` 0 also -> one stage attempt
(``spark.stage.maxConsecutiveAttempts``: a lost shuffle output fails the run instead of
re-running finished map tasks) and no speculation; ``speculate`` F ->
``spark.speculation`` with multiplier F; ``timeout`` -> an alarm in each task
(``sshmr.spark.tasks``). A local master binds to 127.0.0.1 only, without its web UI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from ..engine.config import RunConfig
from ..errors import ConfigError

LOCAL = re.compile(r"local(?:\[(\*|[1-9]\d*)(?:,([1-9]\d*))?\])?")
LOG_LEVEL = "ERROR"


def check_master(master: str, max_retries: int) -> str:
    """The master URL to use: a local master gets the run's task failures
    (``local[C,F]``, F = max_retries + 1); any other URL passes through."""
    failures = max_retries + 1
    m = LOCAL.fullmatch(master)
    if m is None:
        if master.startswith("local[") or not master.strip():
            raise ConfigError(f"--spark-master {master!r}: expected local[N], local[*],"
                              " spark://HOST:PORT, yarn or k8s://URL")
        return master
    cores = m.group(1) or "1"
    if m.group(2) is not None and int(m.group(2)) != failures:
        raise ConfigError(f"--spark-master {master}: {m.group(2)} task failures contradict"
                          f" max_retries {max_retries}; give local[{cores}] and --max-retries")
    return f"local[{cores},{failures}]"


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError("--engine spark needs pyspark, which is not installed here:"
                          " pip install 'sshmr[spark]'") from None


def require_java() -> None:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"at JAVA_HOME={home}" if home else "on PATH"
        raise ConfigError(f"--engine spark needs Java 17 or newer (Spark runs in a JVM) and"
                          f" found none {where}: install it (apt-get install"
                          " default-jre-headless) or set JAVA_HOME")


def check_runtime() -> None:
    """pyspark, and Java unless this process already runs a SparkContext: checked before
    anything is changed (an --overwrite output is only removed once Spark can start)."""
    require_pyspark()
    from pyspark import SparkContext

    if SparkContext._active_spark_context is None:
        require_java()


def spark_settings(master: str, config: RunConfig) -> dict[str, str]:
    """The Spark configuration a run's policies ask for (see the module docstring)."""
    settings = {"spark.ui.showConsoleProgress": "false",
                "spark.task.maxFailures": str(config.max_retries + 1)}
    if master.startswith("local"):
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress":
                         "127.0.0.1", "spark.ui.enabled": "false"})
    if config.max_retries == 0:
        settings.update({"spark.stage.maxConsecutiveAttempts": "1",
                         "spark.speculation": "false"})
    elif config.speculate:
        settings.update({"spark.speculation": "true",
                         "spark.speculation.multiplier": f"{config.speculate:g}"})
    return settings


@contextlib.contextmanager
def spark_context(master: str, config: RunConfig, app: str = "sshmr") -> Iterator[Any]:
    """This process's SparkContext if it has one that fits, else a new one (stopped at
    the end)."""
    require_pyspark()
    from pyspark import SparkContext

    settings = spark_settings(master, config)
    active = SparkContext._active_spark_context
    if active is not None:
        conf = active.getConf()
        wrong = [f"{k}={conf.get(k)} (the run needs {v})" for k, v in settings.items()
                 if k.startswith(("spark.task.max", "spark.stage.max", "spark.speculation"))
                 and conf.get(k, "false" if k == "spark.speculation" else None) not in (v, None)
                 and not master.startswith("local")]
        if active.master != master or wrong:
            raise ConfigError(f"this process already runs a SparkContext ({active.master}"
                              f"{'; ' + ', '.join(wrong) if wrong else ''}) and the run needs"
                              f" {master}: stop it (sc.stop()) or pass the matching"
                              " spark_master and max_retries")
        yield active
        return
    sc = _start(master, settings, app)
    try:
        yield sc
    finally:
        sc.stop()


def _start(master: str, settings: dict[str, str], app: str) -> Any:
    from pyspark import SparkConf, SparkContext

    require_java()
    if master.startswith("local"):  # Python workers: this interpreter; loopback only
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = SparkConf().setMaster(master).setAppName(app).setAll(list(settings.items()))
    if not conf.contains("spark.driver.extraJavaOptions"):  # Spark's logs: errors only
        conf.set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log_config()}")
    try:
        sc = SparkContext(conf=conf)
    except Exception as exc:  # noqa: BLE001 - Py4J and Java startup errors
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ConfigError(f"cannot start Spark ({master}): {first.strip()}") from None
    sc.setLogLevel(LOG_LEVEL)
    return sc


def _log_config() -> str:
    """A log4j2 configuration that prints Spark's errors only (Spark's own default prints
    warnings and banners on every run). The gateway's logger at the root's level too: Spark
    takes a pyspark driver for a shell and otherwise announces its "default log level"."""
    text = ("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
            "logger.repl.name = org.apache.spark.api.python.PythonGatewayServer\n"
            "logger.repl.level = error\n"
            "appender.console.type = Console\nappender.console.name = console\n"
            "appender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = spark: %p %c{1}: %m%n%ex\n")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(),
                        f"sshmr-spark-log4j2-{os.getuid()}-{digest}.properties")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return path


def new_context(master: str = "local[*]", max_retries: int = 3) -> Any:
    """A SparkContext made as a run would make it (for a notebook or a test session that
    runs several jobs in one context); stop it with ``sc.stop()``."""
    require_pyspark()
    master = check_master(master, max_retries)
    return _start(master, spark_settings(master, RunConfig(max_retries=max_retries)), "sshmr")
