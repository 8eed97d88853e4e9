"""Parameter sweeps: cases that differ in named keys, each run as an independent case.

A sweep file (TOML) names a base case and the keys to vary (dotted case keys, lists of values):

    base = "quickstart.toml"            # relative to the sweep file
    combine = "grid"                    # "grid": every combination (default); "zip": i-th values together
    [sweep]
    "kinetics.catalyst" = ["Cu1-PCN", "carbon"]
    "geometry.seed" = [1, 2]
    [labels]                            # optional: short names of values, for the member names
    "geometry.seed" = ["s1", "s2"]
    [set]                               # optional: keys set alike in every member
    "protocol.cycles" = 1

Every member (the base case with its values, validated like a case file) is written as a
complete case file <out>/cases/<member>.toml, named after its values, and runs into
<out>/<member>/: on a local pool of processes (run_pool) or as a Slurm job array through
scripts/slurm.sh (write_slurm). gather(<out>) reads whatever members finished from their folders
(the files every run writes) into <out>/sweep.csv + sweep.md and the figures of
fem.studies.comparison; it does not matter how the members ran. A member whose values are
invalid, or whose run fails, is reported (<out>/<member>/error.txt) and the others go on.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from fem.case import Case, CaseError, load_case
from fem.case.loading import updated_case
from fem.studies.comparison import METRIC_COLUMNS, load_runs, markdown, plot_runs, run_metrics, single_case

MANIFEST = "sweep.json"  # the members and their values, written before anything runs
TABLE = "sweep.csv"
CASES = "cases"  # <out>/cases/<member>.toml
CASE_LIST = "cases.txt"  # the member case files a Slurm array runs, one a line
SUBMIT = "submit.sh"
LOGS = "logs"  # pool runs: <out>/logs/<member>.log
SWEEP_KEYS = ("base", "name", "combine", "sweep", "labels", "set")
MAX_TOKEN = 40  # longest value text in a member name


@dataclass
class Member:
    name: str
    values: dict  # dotted key -> value
    label: str = ""  # the values in short, for legends
    texts: dict = field(default_factory=dict)  # dotted key -> its value in short ([labels] or the value)
    case: Case | None = None  # None: the values are invalid
    error: str | None = None


@dataclass
class Sweep:
    name: str
    source: Path
    base: Case
    keys: list[str]
    members: list[Member] = field(default_factory=list)
    combine: str = "grid"

    def voltage_cycles(self) -> list[int]:
        """The cycles whose voltage curves the figures compare: a comparison base's own, else first and last."""
        n = max((m.case.protocol.cycles for m in self.members if m.case), default=1)
        if self.base.comparison.catalysts:
            return [c for c in self.base.comparison.voltage_cycles if c <= n] or [1]
        return sorted({1, n})


# ---------------------------------------------------------------- the sweep file


def load_sweep(path: str | Path, prepare=None) -> Sweep:
    """Read a sweep file: its base case (passed through prepare(case) -> case, e.g. to add the
    command line's PETSc options) and one Member per combination of values. The file's own
    errors (unknown keys, lists of unequal length for "zip", a key the case does not have)
    raise CaseError, all at once; a member whose values the case validation refuses is kept
    with its error (if every member is refused, that is the file's error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CaseError([f"not a valid TOML file: {err}"], str(path)) from None
    errors = []
    for key in data:
        if key not in SWEEP_KEYS:
            close = difflib.get_close_matches(key, SWEEP_KEYS, n=1)
            errors.append(f"unknown key '{key}'" + (f"; did you mean '{close[0]}'?" if close else
                                                     f"; allowed keys: {', '.join(SWEEP_KEYS)}"))
    if not isinstance(data.get("base"), str):
        errors.append("base must name the base case file (a string, relative to the sweep file), "
                      f"got {data.get('base')!r}")
    combine = data.get("combine", "grid")
    if combine not in ("grid", "zip"):
        errors.append(f"combine = {combine!r}; allowed: 'grid' (every combination) or 'zip' (the i-th values together)")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._+-]+", name) or name.strip(".") == "":
        errors.append(f"name = {name!r}; allowed: letters, digits and . _ + - (it names the output folder)")
    table = data.get("sweep")
    values = _flatten(table) if isinstance(table, dict) else {}
    if not values:
        errors.append('[sweep] must name at least one case key with a list of values, e.g. "kinetics.catalyst" = '
                      '["Cu1-PCN", "carbon"]')
    for key, v in values.items():
        if not isinstance(v, list) or not v:
            errors.append(f"sweep.{key} must be a non-empty list of values, got {v!r}")
    fixed = _flatten(data["set"]) if isinstance(data.get("set"), dict) else {}
    if "set" in data and not isinstance(data["set"], dict):
        errors.append("[set] must be a table of case keys and the values every member gets")
    for key in set(fixed) & set(values):
        errors.append(f"set.{key} is also in [sweep]: a key is either set alike or varied")
    labels = _flatten(data.get("labels", {})) if isinstance(data.get("labels", {}), dict) else None
    if labels is None:
        errors.append("[labels] must be a table of the [sweep] keys")
    for key, v in (labels or {}).items():
        if key not in values:
            errors.append(f"labels.{key} names no key of [sweep] ({', '.join(values)})")
        elif not (isinstance(v, list) and len(v) == len(values[key]) and all(isinstance(x, str) for x in v)):
            errors.append(f"labels.{key} must be a list of {len(values[key])} strings, one per value")
    if combine == "zip" and len({len(v) for v in values.values() if isinstance(v, list)}) > 1:
        errors.append("combine = 'zip' needs lists of one length; got "
                      + ", ".join(f"{k}: {len(v)}" for k, v in values.items()))
    if errors:
        raise CaseError(errors, str(path))
    base = load_case((path.parent / data["base"]).resolve())
    if prepare is not None:
        base = prepare(base)
    errors = [e for key in [*fixed, *values] for e in _key_errors(base, key)]
    if errors:
        raise CaseError(errors, str(path))

    keys = list(values)
    short = _short_names(keys)
    labels = labels or {}

    def text(key, index):
        return labels[key][index] if key in labels else _value_text(values[key][index])

    def token(key, index):
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", text(key, index)).strip("_") or "_"
        if len(slug) > MAX_TOKEN:  # a long value (a list of steps) keeps its start and a hash of the rest
            slug = slug[:MAX_TOKEN - 7] + "-" + hashlib.sha1(text(key, index).encode()).hexdigest()[:6]
        return f"{short[key]}-{slug}"

    sizes = [len(values[k]) for k in keys]
    combos = (itertools.product(*[range(n) for n in sizes]) if combine == "grid"
              else [(i,) * len(keys) for i in range(sizes[0])])
    sweep = Sweep(name, path.resolve(), base, keys, combine=combine)
    for combo in combos:
        member = Member("__".join(token(k, i) for k, i in zip(keys, combo)),
                        {k: values[k][i] for k, i in zip(keys, combo)},
                        ", ".join(f"{short[k]} = {text(k, i)}" for k, i in zip(keys, combo)),
                        {k: text(k, i) for k, i in zip(keys, combo)})
        try:
            member.case = member_case(base, member.name, {**fixed, **member.values})
        except CaseError as err:
            member.error = "invalid values: " + "; ".join(err.errors)
        sweep.members.append(member)
    seen = {}
    for k, m in enumerate(sweep.members):
        if m.name in seen:
            errors.append(f"members {seen[m.name] + 1} and {k + 1} get the same name {m.name!r}: "
                          "the same values twice, or [labels] that repeat")
        seen.setdefault(m.name, k)
    if not errors and all(m.case is None for m in sweep.members):
        errors = sorted({m.error for m in sweep.members})  # the same mistake in every member
    if errors:
        raise CaseError(errors, str(path))
    return sweep


def _flatten(table: dict, where: str = "") -> dict:
    """{"kinetics": {"catalyst": [...]}} and {"kinetics.catalyst": [...]} -> {"kinetics.catalyst": [...]}."""
    flat = {}
    for key, value in table.items():
        full = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            flat.update(_flatten(value, full))
        else:
            flat[full] = value
    return flat


def _key_errors(case: Case, key: str) -> list[str]:
    """The case loader's message for a dotted key the case does not have (with its "did you mean")."""
    obj, parts = case, key.split(".")
    for k, part in enumerate(parts):
        if not is_dataclass(obj):
            return []  # inside a table of free keys ([solver.petsc_options], [catalysts.<name>])
        if part not in {f.name for f in fields(obj)} or part == "base_dir":
            nested = None  # any value: the loader names an unknown key before it reads the value
            for p in reversed(parts[:k + 1]):
                nested = {p: nested}
            try:
                updated_case(case, nested)
            except CaseError as err:
                return err.errors
            return [f"unknown key {key!r}"]
        obj = getattr(obj, part)
    return []  # a key, or a whole table (its values then are tables of keys)


def _short_names(keys: list[str]) -> dict:
    """The shortest tail of each dotted key that no other key ends with (kinetics.catalyst -> catalyst)."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        out[key] = tail
    return out


def _value_text(value) -> str:
    """A value as one line of text (a table cell, a member name): lists joined by "; "."""
    if isinstance(value, list):
        return "; ".join(_value_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value).lower() if isinstance(value, bool) else str(value)


def member_case(base: Case, name: str, values: dict) -> Case:
    """The validated case of one member: base with the dotted keys set, as one ordinary run
    (a comparison base loses its catalyst list; fem.studies.comparison.single_case)."""
    changes: dict = {"name": name}
    for key, value in values.items():
        parts, obj, node = key.split("."), base, changes
        for part in parts[:-1]:
            obj = getattr(obj, part) if is_dataclass(obj) else obj.get(part, {}) if isinstance(obj, dict) else {}
            if isinstance(obj, dict) and part not in node:
                node[part] = copy.deepcopy(obj)  # a table of free keys: the member's merge over the base's
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)  # [set] values are shared by the members
    return single_case(updated_case(base, changes))


# ---------------------------------------------------------------- case files


def case_toml(case: Case, header: str = "") -> str:
    """The case as a complete TOML case file (every key, absolute paths) that load_case reads back."""
    data = {k: v for k, v in asdict(case).items() if k != "base_dir"}
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + _toml_table(data, "")
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # finite (validated): repr round-trips
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_table(data: dict, where: str) -> list[str]:
    """Lines of table `where`: its plain keys, then its sub-tables (None: left out, TOML has no null)."""
    lines = [f"[{where}]"] if where else []
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items()
              if v is not None and not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += [""] + _toml_table(v, f"{where}.{_toml_key(k)}" if where else _toml_key(k))
    return lines


# ---------------------------------------------------------------- writing and running the members


def write_members(sweep: Sweep, out_dir: Path) -> dict:
    """Write <out>/sweep.json and each valid member's case file; an invalid member's folder gets
    error.txt. Returns member name -> "invalid", "done" (finished with the same case file),
    "running" (a live run holds its folder), "resume" (a checkpoint of the same case file) or "run"."""
    from fem.cycling import checkpoint
    from fem.mesh.inputs import lock_holder

    out_dir = Path(out_dir)
    (out_dir / CASES).mkdir(parents=True, exist_ok=True)
    states = {}
    for m in sweep.members:
        folder, path = out_dir / m.name, out_dir / CASES / f"{m.name}.toml"
        if m.case is None:
            folder.mkdir(exist_ok=True)
            (folder / "error.txt").write_text(m.error + "\n")
            path.unlink(missing_ok=True)
            states[m.name] = "invalid"
            continue
        described = "\n".join(f"  {k} = {_value_text(v)}" for k, v in m.values.items())
        text = case_toml(m.case, f"member {m.name!r} of sweep {sweep.name!r} ({sweep.source}), written by "
                                 f"`asslsb-fem sweep`:\n{described}")
        same = path.is_file() and path.read_text() == text
        if lock_holder(folder) is not None:
            states[m.name] = "running"  # by another sweep or array task: not touched here
        elif same and (folder / "summary.json").is_file() and not (folder / "error.txt").exists():
            states[m.name] = "done"
        elif same and checkpoint.exists(folder):
            states[m.name] = "resume"
        else:
            states[m.name] = "run"
        if not same:
            path.write_text(text)
    manifest = {"sweep": sweep.name, "source": str(sweep.source), "base": sweep.base.name, "keys": sweep.keys,
                "voltage_cycles": sweep.voltage_cycles(),
                "combine": sweep.combine,
                "members": [{"name": m.name, "label": m.label, "values": m.values, "texts": m.texts,
                             "case": f"{CASES}/{m.name}.toml" if m.case else None} for m in sweep.members]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return states


def _error_line(log: str) -> str:
    """The command line's one-line message ("error: ...") from a member's output, else its last line."""
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def run_member(case_file: Path, folder: Path, log_path: Path, resume: bool) -> dict:
    """One member as its own process (`python -m fem.cli run`); a failure leaves error.txt in its folder."""
    cmd = [sys.executable, "-m", "fem.cli", "run", str(case_file), "--out", str(folder), "-q"] + ["--resume"] * resume
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the pool shares the cores by processes
        env.setdefault(name, "1")
    (folder / "error.txt").unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env).returncode
    seconds = time.perf_counter() - wall0
    if code == 0:
        return {"status": "ok", "seconds": seconds}
    message = _error_line(log_path.read_text(errors="replace"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").write_text(f"{message}\n(exit code {code}; output in {log_path})\n")
    return {"status": "failed", "seconds": seconds, "error": message}


def run_pool(sweep: Sweep, out_dir: Path, jobs: int, say=print) -> dict:
    """Run the members not yet finished, `jobs` processes at once; returns name -> outcome
    ({"status": "ok" | "failed" | "skipped" | "running" | "invalid", ...}). The others go on after a failure."""
    from fem.mesh.inputs import lock_holder

    out_dir = Path(out_dir)
    states = write_members(sweep, out_dir)
    outcomes = {}
    for m in sweep.members:
        if states[m.name] == "invalid":
            outcomes[m.name] = {"status": "invalid", "error": m.error}
            say(f"{m.name}: invalid, not run: {m.error}")
        elif states[m.name] == "done":
            outcomes[m.name] = {"status": "skipped"}
            say(f"{m.name}: finished before, skipped")
        elif states[m.name] == "running":
            outcomes[m.name] = {"status": "running"}
            say(f"{m.name}: another run holds its folder ({lock_holder(out_dir / m.name)}), skipped")
    todo = [m for m in sweep.members if states[m.name] in ("run", "resume")]

    def one(m):
        outcome = run_member(out_dir / CASES / f"{m.name}.toml", out_dir / m.name, out_dir / LOGS / f"{m.name}.log",
                             states[m.name] == "resume")
        text = f"{outcome['seconds']:.1f} s" + (f": {outcome['error']}" if outcome["status"] != "ok" else "")
        say(f"{m.name}: {outcome['status']}{' (resumed)' if states[m.name] == 'resume' else ''}, {text}")
        return m.name, outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes.update(pool.map(one, todo))
    return outcomes


def write_slurm(sweep: Sweep, out_dir: Path, root: Path) -> tuple[Path, list[str]]:
    """Write the member case files, <out>/cases.txt (the members not yet finished) and
    <out>/submit.sh, which submits them as one job array of scripts/slurm.sh (root: the
    checkout that holds scripts/ and .venv). Returns (submit.sh, the listed members)."""
    out_dir = Path(out_dir).resolve()
    states = write_members(sweep, out_dir)
    todo = [m.name for m in sweep.members if states[m.name] in ("run", "resume")]
    (out_dir / CASE_LIST).write_text("".join(f"{out_dir / CASES / name}.toml\n" for name in todo))
    script = out_dir / SUBMIT
    q = shlex.quote
    submit = (f"""exec sbatch --job-name={q(sweep.name)} --array=0-{len(todo) - 1} "$@" \\
    scripts/slurm.sh --list {q(str(out_dir / CASE_LIST))}""" if todo else
              f'echo "sweep {sweep.name}: every member has finished; nothing to submit"')
    script.write_text(f"""#!/bin/bash
# Sweep {sweep.name!r}: {len(todo)} member(s) not yet finished, as one Slurm job array of
# scripts/slurm.sh (one member case per array task, each into {out_dir}/<member>/).
# Written by `asslsb-fem sweep {sweep.source} --slurm`; options pass on to sbatch, e.g.
#   bash {script} --ntasks=1 --time=00:30:00
# When the tasks have ended: asslsb-fem gather {out_dir}
set -euo pipefail
cd {q(str(Path(root).resolve()))}
export OUT_ROOT={q(str(out_dir))}
{submit}
""")
    script.chmod(0o755)
    return script, todo


# ---------------------------------------------------------------- gathering


def gather(out_dir: Path) -> list[dict]:
    """One row per member from the folders in out_dir (however the members ran): the varied
    keys, status ("ok", "failed", "running" or "not run") and fem.studies.comparison's
    METRIC_COLUMNS; writes sweep.csv, sweep.md and the figures of the finished ones: sweep_cycle1.png
    (first-cycle capacity, mean discharge voltage, hysteresis per member), sweep_voltage.png, and
    sweep_retention.png (runs of several cycles), sweep_Ea.png (measured Ea) and, for a grid of two
    keys, sweep_grid.png (last-cycle capacity over the second key, a line per value of the first)."""
    from fem.mesh.inputs import lock_holder
    from fem.outputs.tables import write_table

    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir} holds no sweep: {MANIFEST} is missing (written by `asslsb-fem sweep`)")
    manifest = json.loads(path.read_text())
    keys, rows, finished = manifest["keys"], [], {}
    for m in manifest["members"]:
        folder = out_dir / m["name"]
        row = {"member": m["name"], **{k: _value_text(v) for k, v in m["values"].items()}}
        if (folder / "summary.json").is_file() and not (folder / "error.txt").exists():
            row.update(status="ok", **run_metrics(folder))
            finished[m.get("label") or m["name"]] = folder
        elif (folder / "error.txt").is_file():
            row.update(status="failed", error=(folder / "error.txt").read_text().splitlines()[0])
        else:
            row["status"] = "running" if lock_holder(folder) is not None else "not run"
        rows.append(row)
    columns = ["member", *keys, "status", *METRIC_COLUMNS, "error"]
    write_table(out_dir / TABLE, columns, rows)
    failed = "".join(f"* {r['member']}: {r['error']}\n" for r in rows if r["status"] == "failed")
    (out_dir / "sweep.md").write_text(markdown(rows, ["member", *keys, "status"]) + (failed and "\n" + failed))
    runs = load_runs(finished)
    if runs:
        several = any(len(r["cycles"]) > 1 for r in runs.values())  # else retention shows single points
        figures = ["cycle1", "voltage"] + ["retention"] * several + ["Ea"] * any(r["Ea"] for r in runs.values())
        plot_runs(runs, manifest["voltage_cycles"], out_dir, "sweep", manifest["sweep"], figures)
    if manifest.get("combine") == "grid" and len(keys) == 2:
        _grid_figure(manifest, rows, out_dir)
    return rows


def _grid_figure(manifest: dict, rows: list[dict], out_dir: Path) -> Path | None:
    """sweep_grid.png: last-cycle capacity over the second key's values, a line per first-key value."""
    from fem.studies.comparison_plots import grid

    a, b = manifest["keys"]
    texts = {m["name"]: m.get("texts") or {} for m in manifest["members"]}
    done = [{**r, a: texts[r["member"]][a], b: texts[r["member"]][b]} for r in rows
            if r["status"] == "ok" and {a, b} <= set(texts[r["member"]])]
    if not done:  # nothing finished, or a manifest written before value texts were kept
        return None
    path = out_dir / "sweep_grid.png"
    grid(done, a, b, path, manifest["sweep"])
    return path
