"""Running an unmodified mrjob job (a ``mrjob.job.MRJob`` subclass) with sshmr (master side).

``adapt`` parses the job's own options with the job's ``configure_args`` (as mrjob does),
refuses what sshmr cannot run (``*_cmd`` and ``*_pre_filter`` substeps, Jar and Spark
steps, ARCHIVES, ``mapper_raw`` after step 1) with an error naming it, collects the
Hadoop-only settings it ignores into one warning, and returns the executor
(``sshmr.mapreduce.mrjob_task.MRJobTask``) and the code to ship: the job's module, mrjob's own
package (``*.py``: the hosts need nothing installed) and the job's files (FILES, DIRS,
``--files``/``--dirs``, ``add_file_arg`` values), which each task sees in its working
directory under the names mrjob gives them. mrjob is needed only here, on the master
(``pip install 'sshmr[mrjob]'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.target import Code, code_of
from ..errors import ConfigError, InputError, TargetError
from .mrjob_task import FILES_DIR, MRJobTask

MAX_FILES_BYTES = 512 * 1024 * 1024
# Runner options that only mean something to mrjob's runners; the ones sshmr honours
# (--files, --dirs) and the job's own passthrough and file options are not listed here.
HONOURED = ("upload_files", "upload_dirs")


def is_mrjob_class(cls: Any) -> bool:
    """Whether ``cls`` subclasses ``mrjob.job.MRJob`` (without importing mrjob)."""
    return any(c.__module__ == "mrjob.job" and c.__name__ == "MRJob"
               for c in getattr(cls, "__mro__", ()))


@dataclass
class Adapted:
    """What ``sshmr run`` runs for an mrjob job."""

    executor: MRJobTask
    code: Code
    inputs: list[str]
    split: str | None
    warnings: list[str] = field(default_factory=list)


def adapt(cls: type, args: Sequence[str] = (), inputs: Sequence[str] = ("-",),
          code: Code | None = None, split: str | None = None) -> Adapted:
    """The sshmr executor, code, inputs and split for mrjob job ``cls`` run with ``args``
    (its own options, as after ``--`` on the command line) over ``inputs``."""
    name = cls.__name__
    job = _instantiate(cls, list(args))
    if job.options.args:
        raise ConfigError(f"{name}: {' '.join(job.options.args)!r} after -- look like input"
                          " files; give the inputs before --, the job's options after it")
    steps = _check_steps(job, name)
    kwargs = job._job_kwargs()
    if kwargs.get("upload_archives"):
        raise ConfigError(f"{name}: ARCHIVES/--archives are not supported by sshmr; ship the"
                          " unpacked directory with DIRS or --dirs instead")
    task_args, files, file_bytes = _task_args(job, name, list(args))
    for entry in kwargs.get("upload_files") or ():
        file_bytes.update(_ship(entry, files, name, "FILES", is_dir=False))
    for entry in kwargs.get("upload_dirs") or ():
        file_bytes.update(_ship(entry, files, name, "DIRS", is_dir=True))

    if code is None:
        code = code_of(cls)
    shipped = dict(_mrjob_files())
    shipped.update(code.files)
    shipped.update({f"{FILES_DIR}/{rel}": data for rel, data in file_bytes.items()})

    paths = list(inputs)
    if steps[0]["mapper_raw"]:  # its input_uri: an absolute path, as mrjob's runners give
        paths = [p if p == "-" else os.path.abspath(p) for p in paths]
    if steps[0]["mapper_raw"] or any(p.endswith(".bz2") for p in paths):
        if split not in (None, "files"):
            raise InputError(f"{name}: --split {split} cannot be used: its first mapper reads"
                             " whole files (mapper_raw, or .bz2 input); use --split files")
        split = "files"
    executor = MRJobTask(code.module, code.cls_name, task_args, _links(files),
                         sort_values=bool(job.sort_values()))
    return Adapted(executor, Code("sshmr.mapreduce.mrjob_task", "MRJobTask", shipped), paths,
                   split, _ignored(job, name, list(args)))


def _instantiate(cls: type, args: list[str]) -> Any:
    try:
        return cls(args=args)
    except (ValueError, TypeError, SystemExit) as exc:  # mrjob's argparse errors: ValueError
        script = getattr(sys.modules.get(cls.__module__), "__file__", cls.__module__)
        raise ConfigError(f"{cls.__name__} options {' '.join(args)!r}: {exc}; the options"
                          f" after -- are the job's own ('python {script} --help' lists"
                          " them)") from None


def _check_steps(job: Any, name: str) -> list[Any]:
    from mrjob.step import MRStep

    try:
        steps = list(job.steps())
    except Exception as exc:  # noqa: BLE001 - the job's code
        raise TargetError(f"{name}.steps() failed: {type(exc).__name__}: {exc}") from None
    if not steps:
        raise TargetError(f"{name} defines no steps: define mapper/reducer or steps()")
    for i, step in enumerate(steps):
        if not isinstance(step, MRStep):
            raise TargetError(f"{name} step {i + 1} is a {type(step).__name__}: sshmr runs"
                              " MRStep steps (Python mappers, combiners and reducers), not"
                              " Hadoop jars or Spark")
        desc = step.description(i)
        for sub in ("mapper", "combiner", "reducer"):
            part = desc.get(sub) or {}
            if part.get("type") == "command":
                raise TargetError(f"{name} step {i + 1} uses {sub}_cmd, a shell command:"
                                  f" sshmr runs Python steps only; write the {sub} in Python")
            if part.get("pre_filter"):
                raise TargetError(f"{name} step {i + 1} uses {sub}_pre_filter, a shell"
                                  " command: sshmr runs Python steps only; filter in the"
                                  f" {sub} instead")
        if i and step["mapper_raw"]:
            raise TargetError(f"{name} step {i + 1} uses mapper_raw: only the first step"
                              " can read whole input files")
    return steps


def _task_args(job: Any, name: str, args: list[str]
               ) -> tuple[list[str], dict[str, str], dict[str, bytes]]:
    """The job's passthrough and file options as a task sees them (a file option's value
    becomes the file's name in the working directory), and those files."""
    from mrjob.options import _parse_raw_args
    from mrjob.setup import parse_legacy_hash_path

    task_args: list[str] = []
    files: dict[str, str] = {}
    data: dict[str, bytes] = {}
    for dest, option, values in _parse_raw_args(job.arg_parser, args):
        if dest in job._file_arg_dests:
            spec = parse_legacy_hash_path("file", values[0])
            entry = spec["path"] + (f"#{spec['name']}" if spec.get("name") else "")
            data.update(_ship(entry, files, name, option, is_dir=False))
            task_args += [option, _name_of(entry)]
        elif dest in job._passthru_arg_dests:
            if option and len(values) == 1 and values[0].startswith("-"):
                task_args.append(f"{option}={values[0]}")
            else:
                task_args += ([option] if option else []) + list(values)
    return task_args, files, data


def _name_of(entry: str) -> str:
    path, _, name = entry.partition("#")
    return name or os.path.basename(path.rstrip("/"))


def _ship(entry: str, files: dict[str, str], name: str, what: str,
          is_dir: bool) -> dict[str, bytes]:
    """Add ``entry`` (``path`` or ``path#name``) to ``files``; return its bytes by path."""
    path = os.path.expanduser(os.path.expandvars(entry.partition("#")[0]))
    link = _name_of(entry)
    kind = "directory" if is_dir else "file"
    if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
        raise InputError(f"{name}: {what} {entry!r}: no such {kind}")
    real = os.path.realpath(path)
    if link in files and files[link] != real:
        raise InputError(f"{name}: two files would be named {link!r} in the working directory"
                         f" ({files[link]} and {real}); rename one with path#othername")
    files[link] = real
    root = Path(real)
    found = sorted(p for p in root.rglob("*") if p.is_file()) if is_dir else [root]
    out = {}
    total = 0
    for p in found:
        rel = link if not is_dir else f"{link}/{p.relative_to(root)}"
        out[rel] = p.read_bytes()
        total += len(out[rel])
        if total > MAX_FILES_BYTES:
            raise InputError(f"{name}: {what} {entry!r} holds more than"
                             f" {MAX_FILES_BYTES >> 20} MiB; put big data in the input")
    return out


def _links(files: dict[str, str]) -> dict[str, str]:
    return {link: link for link in files}


def _mrjob_files() -> dict[str, bytes]:
    """mrjob's own package (``*.py``), shipped so hosts need not have it installed."""
    import mrjob

    root = Path(mrjob.__file__).parent
    return {f"mrjob/{p.relative_to(root)}": p.read_bytes()
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def _ignored(job: Any, name: str, args: list[str]) -> list[str]:
    """One warning naming the Hadoop-only settings sshmr accepts and ignores."""
    from mrjob.options import _parse_raw_args

    ignored = []
    if job.jobconf():
        ignored.append("JOBCONF")
    for attr, method in (("HADOOP_INPUT_FORMAT", "hadoop_input_format"),
                         ("HADOOP_OUTPUT_FORMAT", "hadoop_output_format"),
                         ("LIBJARS", "libjars"), ("PARTITIONER", "partitioner")):
        if getattr(job, method)():
            ignored.append(attr)
    if any(step.description(i).get("jobconf") for i, step in enumerate(job.steps())):
        ignored.append("MRStep(jobconf=...)")
    own = job._passthru_arg_dests | job._file_arg_dests | set(HONOURED)
    ignored += [option or dest for dest, option, _ in _parse_raw_args(job.arg_parser, args)
                if dest not in own and dest != "args"]
    if not ignored:
        return []
    return [f"{name}: ignoring {', '.join(dict.fromkeys(ignored))} (Hadoop and mrjob runner"
            " settings; sshmr runs the job's Python steps itself)"]
