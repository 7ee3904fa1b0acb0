"""An unmodified mrjob ``MRJob`` run as a sshmr ``MapReduce`` task (standard library only;
mrjob's own package rides in the code bundle, so hosts need nothing but ``python3``).

``MRJobTask`` carries what the master decided (``sshmr.mapreduce.mrjob_adapter``): the job's module
and class, the job's own arguments as a task sees them, the files shipped with it and
SORT_VALUES. Each task gets a fresh instance of the job (mrjob runs one process per task)
in a working directory where the job's files appear under the names mrjob gives them.

Records are mrjob's own lines: every ``(key, value)`` is encoded with the protocol mrjob
picks for that substep (``pick_protocols``: INPUT_, INTERNAL_, OUTPUT_PROTOCOL or the
job's own) and carried as ``(hex of the bytes before the first tab, the rest or None)``,
the rest one character per byte (latin-1). Records therefore group and partition by their
encoded key and sort by its bytes, as on Hadoop and in mrjob's runners (hex keeps byte
order), a reducer sees ``itertools.groupby`` of the decoded keys, as in mrjob, and the
last substep's lines are the output (``MapReduce.output_lines``).
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import itertools
import os
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .job import MapReduce, MRStep

FILES_DIR = "sshmr_mrjob_files"  # the job's files, under the bundle's user code directory
WORK_DIR = "mrjob-wd"  # a task's working directory, inside its attempt directory
GZIP_MAGIC = b"\x1f\x8b"
_SPLIT_SOURCE = re.compile(r" bytes \d+-\d+$")

Line = Tuple[str, Optional[str]]


class MRJobTask(MapReduce):
    """Runs the steps of mrjob job ``job_module:job_class`` (built by the master)."""

    output_lines = True

    def __init__(self, job_module: str, job_class: str, args: List[str],
                 files: Dict[str, str], sort_values: bool = False) -> None:
        self.job_module = job_module
        self.job_class = job_class
        self.args = list(args)
        self.files = dict(files)  # name in the working directory -> path under FILES_DIR
        self.sort_values = bool(sort_values)

    # ------------------------------------------------------------------ the job

    def new_job(self) -> Any:
        """A fresh instance of the mrjob job, its counters and status going to sshmr."""
        obj: Any = importlib.import_module(self.job_module)
        for part in self.job_class.split("."):
            obj = getattr(obj, part)
        job = obj(args=list(self.args))
        job.increment_counter = self._increment_counter
        job.set_status = self._set_status
        return job

    def _job(self) -> Any:
        job = self.__dict__.get("_mrjob")
        return job if job is not None else self.new_job()

    def _increment_counter(self, group: Any, counter: Any, amount: int = 1) -> None:
        if not isinstance(amount, int):  # mrjob's own checks and renaming
            raise TypeError("amount must be an integer, not %r" % (amount,))
        self.increment_counter(str(group).replace(",", ";"), str(counter).replace(",", ";"),
                               amount)

    def _set_status(self, msg: Any) -> None:
        os.write(2, ("reporter:status:%s\n" % (msg,)).encode("utf-8"))  # the attempt's stderr
        self.increment_counter("mrjob status", str(msg)[:200], 1)

    # ------------------------------------------------------------------ a task

    def execute(self, payload: Any) -> Any:
        payload = dict(payload, file=os.path.abspath(payload["file"]))
        work = os.path.join(os.path.dirname(payload["file"]), WORK_DIR)
        self._link_files(work)
        env = _task_env(payload["mr"])
        saved_env = {name: os.environ.get(name) for name in env}
        cwd = os.getcwd()
        os.environ.update(env)
        os.chdir(work)
        try:
            self.__dict__["_mrjob"] = self.new_job()
            return MapReduce.execute(self, payload)
        finally:
            self.__dict__.pop("_mrjob", None)
            os.chdir(cwd)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _link_files(self, work: str) -> None:
        os.makedirs(work, mode=0o700, exist_ok=True)
        if not self.files:
            return
        code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        root = os.path.join(code, "user", FILES_DIR)
        for name, rel in self.files.items():
            link = os.path.join(work, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(root, rel), link)

    def input_records(self, path: str, source: str) -> Iterator[Tuple[Any, Any]]:
        """Step 1's input: ``(path, uri)`` once for ``mapper_raw``, else each raw line
        (bytes, without its line end, as mrjob reads it) for the INPUT_PROTOCOL."""
        original = _SPLIT_SOURCE.sub("", source)
        if self._job().steps()[0]["mapper_raw"]:
            yield path, original
            return
        with open(path, "rb") as raw:
            gz = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream: Any = raw
            if gz:
                stream = gzip.GzipFile(fileobj=raw)
            elif original.endswith(".bz2"):
                stream = bz2.BZ2File(raw)
            for line in stream:
                yield None, line.rstrip(b"\r\n")

    # ------------------------------------------------------------------ steps

    def steps(self) -> List[MRStep]:
        job = self._job()
        steps = []
        for i, step in enumerate(job.steps()):
            desc = step.description(i)
            functions: Dict[str, Callable[..., Any]] = {}
            if "mapper" in desc:
                functions.update(_map_functions(job, step, i))
            if "reducer" in desc:
                functions.update(_group_functions(job, step, i, "reducer", self.sort_values))
                if "combiner" in desc:
                    functions.update(_group_functions(job, step, i, "combiner",
                                                      self.sort_values))
            if not functions:  # a later step of only a combiner: lines pass through
                functions["mapper"] = _pass
            steps.append(MRStep(**functions))
        return steps


# ---------------------------------------------------------------------- substeps

def _map_functions(job: Any, step: Any, index: int) -> Dict[str, Callable[..., Any]]:
    read, write = job.pick_protocols(index, "mapper")
    encode = _encoder(write)
    mapper, raw = step["mapper"], step["mapper_raw"]
    init, final = step["mapper_init"], step["mapper_final"]

    if raw:
        def map_fn(path: str, uri: str) -> Iterator[Line]:
            return encode(raw(path, uri))
    elif index == 0:
        def map_fn(_: None, line: bytes) -> Iterator[Line]:
            key, value = read(line)
            return encode(mapper(key, value))
    else:
        def map_fn(text: str, rest: Optional[str]) -> Iterator[Line]:
            key, value = read(_line(text, rest))
            return encode(mapper(key, value))

    functions: Dict[str, Callable[..., Any]] = {"mapper": map_fn}
    if init:
        functions["mapper_init"] = lambda: encode(init())
    if final:
        functions["mapper_final"] = lambda: encode(final())
    return functions


def _group_functions(job: Any, step: Any, index: int, kind: str,
                     sort_values: bool) -> Dict[str, Callable[..., Any]]:
    """The reducer or combiner: mrjob's groupby over the decoded keys of one encoded key's
    lines (sorted whole, as mrjob sorts them, with SORT_VALUES)."""
    read, write = job.pick_protocols(index, kind)
    encode = _encoder(write)
    fn, init, final = step[kind], step[kind + "_init"], step[kind + "_final"]

    def group_fn(text: str, rests: Iterable[Optional[str]]) -> Iterator[Line]:
        lines: Iterable[bytes] = (_line(text, rest) for rest in rests)
        if sort_values:
            lines = sorted(lines, key=_with_newline)
        pairs = (read(line) for line in lines)
        for key, group in itertools.groupby(pairs, key=_first):
            yield from encode(fn(key, (value for _, value in group)))

    functions: Dict[str, Callable[..., Any]] = {kind: group_fn}
    if init:
        functions[kind + "_init"] = lambda: encode(init())
    if final:
        functions[kind + "_final"] = lambda: encode(final())
    return functions


def _encoder(write: Callable[[Any, Any], bytes]) -> Callable[[Any], Iterator[Line]]:
    """Encode pairs as mrjob writes them: one line per pair, and a pair whose encoding
    holds newlines is several lines, as when mrjob's output is read back."""
    def encode(pairs: Optional[Iterable[Tuple[Any, Any]]]) -> Iterator[Line]:
        for key, value in pairs or ():
            data = write(key, value)
            if not isinstance(data, bytes):
                data = str(data).encode("utf-8")
            if b"\n" in data:
                for part in data.split(b"\n"):
                    yield _split(part)
            else:
                yield _split(data)
    return encode


def _split(line: bytes) -> Line:
    tab = line.find(b"\t")
    if tab < 0:
        return line.hex(), None
    return line[:tab].hex(), line[tab + 1:].decode("latin-1")


def _line(key: str, rest: Optional[str]) -> bytes:
    line = bytes.fromhex(key)
    if rest is not None:
        line += b"\t" + rest.encode("latin-1")
    return line.rstrip(b"\r\n")


def _with_newline(line: bytes) -> bytes:
    return line + b"\n"


def _first(pair: Tuple[Any, Any]) -> Any:
    return pair[0]


def _pass(text: str, rest: Optional[str]) -> Iterator[Line]:
    yield text, rest


def _task_env(mr: Dict[str, Any]) -> Dict[str, str]:
    """The jobconf environment mrjob's local runners give a task (``jobconf_from_env``)."""
    is_map = mr.get("phase") == "map"
    env = {"mapreduce_task_ismap": "true" if is_map else "false",
           "mapreduce_task_partition": str(mr.get("task", 0))}
    if is_map and mr.get("step") == 0:
        source = _SPLIT_SOURCE.sub("", str(mr.get("source", "")))
        env["mapreduce_map_input_file"] = env["map_input_file"] = "file://" + source
    return env
