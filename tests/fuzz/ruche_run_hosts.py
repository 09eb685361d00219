"""A seeded generator of hostfiles and -H specs driving `launcher/ruche-run --dry-run` (issue 22):
ruche-run's host parsing is bash, so it is fuzzed by its own oracle rather than libFuzzer.

Each case is a -np, and a -H spec or a hostfile (written to a temporary file), mutated from valid
ones: empty and repeated entries, comments, blank and CRLF lines, a missing last newline, slot
counts with leading zeros, huge or zero, max_slots= beside slots=, odd characters, newlines,
--elastic. A model of what the hosts mean (Open MPI's: -H host[:slots], a hostfile's
"host slots=N" lines) says whether the job fits; ruche-run must agree:
  - it ends within 10 s with exit 0 (the line on stdout, nothing on stderr) or exit 2 (one line
    'ruche-run: ...' on stderr), never a bash error (unbound variable, bad arithmetic, ...);
  - exit 0 exactly when the model accepts the hosts and -np fits their slots.

usage: ruche_run_hosts.py RUCHE_RUN [--seed S] [--cases N | --seconds T] [--crashes DIR]
       ruche_run_hosts.py RUCHE_RUN --replay DIR...    (each file a JSON case)
A failing case is printed and, with --crashes, saved as DIR/<hash>.json; `--replay` runs saved
cases (tests/fuzz/corpus/ruche_run and crashes/ruche_run under ctest)."""
import argparse
import hashlib
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import time

HOST_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_SLOTS = 10**6  # ruche-run refuses slot counts above this (bash arithmetic is 64-bit)


def model(case):
    """(accepted, why) for a case: the hosts as Open MPI reads them and whether -np fits."""
    np_ = case["np"]
    hosts = []  # (name, slots or None)
    if case.get("H") is not None:
        spec = case["H"]
        if spec == "":
            hosts = []
        else:
            fields = spec.split(",")
            if fields[-1] == "":  # one trailing comma
                fields.pop()
            for f in fields:
                m = re.fullmatch(r"([A-Za-z0-9_.-]+)(:([0-9]+))?", f)
                if not m:
                    return False, f"bad -H entry {f!r}"
                slots = int(m.group(3)) if m.group(3) is not None else 1
                hosts.append((m.group(1), slots))
            if not hosts:
                return False, "no host in -H"
    elif case.get("hostfile") is not None:
        for line in case["hostfile"].split("\n"):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            slots = None
            for w in words[1:]:
                if w.startswith("#"):
                    break
                m = re.fullmatch(r"slots=([0-9]+)", w)
                if m:
                    slots = int(m.group(1))
                    break
            hosts.append((words[0], slots))
        if not hosts:
            return False, "hostfile names no host"
    for name, slots in hosts:
        if slots is not None and slots > MAX_SLOTS:
            return False, f"{slots} slots"
    if case.get("elastic"):
        if not hosts:
            return False, "--elastic without hosts"
        if any(s is None for _, s in hosts):
            return False, "--elastic with a host without slots"
    known = all(s is not None for _, s in hosts)
    if hosts and known and np_ > sum(s for _, s in hosts):
        return False, "more ranks than slots"
    return True, "fits"


def run(ruche_run, case, tmp):
    args = [ruche_run, "-np", str(case["np"])]
    if case.get("H") is not None:
        args += ["-H", case["H"]]
    if case.get("hostfile") is not None:
        path = pathlib.Path(tmp) / "hostfile"
        path.write_bytes(case["hostfile"].encode("utf-8", "surrogateescape"))
        args += ["--hostfile", str(path)]
    if case.get("elastic"):
        args += ["--elastic"]
    args += ["--dry-run", "--", "ruche", "train"]
    env = dict(os.environ, RUCHE_RUN_CORES="4", RUCHE_RUN_MPIRUN="mpirun")
    env.pop("SLURM_JOB_ID", None)
    env.pop("OMP_NUM_THREADS", None)
    try:
        p = subprocess.run(args, capture_output=True, timeout=10, env=env)
    except subprocess.TimeoutExpired:
        return "hang (over 10 s)"
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    accepted, why = model(case)
    if p.returncode not in (0, 2):
        return f"exit {p.returncode}: {err.strip()[:300]}"
    if p.returncode == 0:
        if err:
            return f"exit 0 with stderr: {err.strip()[:300]}"
        if f"-np {case['np']}" not in out:
            return f"exit 0 but no '-np {case['np']}' in the line: {out.strip()[:300]}"
    else:
        lines = err.rstrip("\n").split("\n")
        if len(lines) != 1 or not lines[0].startswith("ruche-run: "):
            return f"exit 2 but not one 'ruche-run:' line: {err.strip()[:300]}"
    if (p.returncode == 0) != accepted:
        return (f"exit {p.returncode}, the model says {'accept' if accepted else 'refuse'} "
                f"({why}): {err.strip()[:300]}")
    return None


def slots_text(rng):
    return rng.choice(["1", "2", "4", "8", "0", "01", "007", "16", "999999", "1000001",
                       "99999999999999999999", "18446744073709551617", ""])


def host_name(rng):
    return rng.choice(["node1", "node2", "a", "h-3.example.org", "10.0.0.2", "localhost",
                       "x_y", "n" * 60, "bad host", "b@d", "-np", "*", "$(id)", "é", ""])


def gen_case(rng):
    case = {"np": rng.choice([1, 2, 3, 4, 8, 16, 64, rng.randint(1, 40)])}
    if rng.random() < 0.1:
        case["elastic"] = True
    if rng.random() < 0.5:
        entries = []
        for _ in range(rng.randint(0, 5)):
            h = host_name(rng)
            r = rng.random()
            entries.append(h if r < 0.3 else f"{h}:{slots_text(rng)}")
        spec = ",".join(entries)
        for _ in range(rng.randint(0, 2)):  # mutations
            i = rng.randint(0, len(spec))
            spec = spec[:i] + rng.choice([",", ":", " ", "\n", ",,", ":3", "\t", "#"]) + spec[i:]
        case["H"] = spec
    else:
        lines = []
        for _ in range(rng.randint(0, 5)):
            r = rng.random()
            if r < 0.1:
                lines.append("# " + host_name(rng) + " slots=4")
            elif r < 0.15:
                lines.append("")
            else:
                words = [host_name(rng) or "h"]
                if rng.random() < 0.8:
                    words.append(f"slots={slots_text(rng)}")
                if rng.random() < 0.2:
                    words.insert(1, f"max_slots={slots_text(rng)}")
                if rng.random() < 0.1:
                    words.append("# a comment slots=64")
                lines.append(rng.choice([" ", "  ", "\t"]).join(words))
        eol = rng.choice(["\n", "\n", "\r\n"])
        text = eol.join(lines) + rng.choice([eol, eol, ""])
        if rng.random() < 0.1:
            text = "  " + text
        case["hostfile"] = text
    return case


def save(case, directory):
    data = json.dumps(case, sort_keys=True, ensure_ascii=True).encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha1(data).hexdigest()[:16] + ".json")
    path.write_bytes(data + b"\n")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ruche_run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--crashes", type=pathlib.Path)
    ap.add_argument("--replay", type=pathlib.Path, nargs="+")
    a = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        if a.replay:
            files = sorted(f for d in a.replay if d.is_dir() for f in d.glob("*.json"))
            for f in files:
                why = run(a.ruche_run, json.loads(f.read_text()), tmp)
                if why:
                    failures += 1
                    print(f"FAIL {f}: {why}")
            print(f"ruche_run_hosts: {len(files)} saved cases, {failures} failures")
            sys.exit(1 if failures or not files else 0)
        rng = random.Random(a.seed)
        start, n = time.monotonic(), 0
        while (time.monotonic() - start < a.seconds) if a.seconds else n < a.cases:
            case = gen_case(rng)
            n += 1
            why = run(a.ruche_run, case, tmp)
            if why:
                failures += 1
                where = save(case, a.crashes) if a.crashes else ""
                print(f"FAIL {json.dumps(case)}: {why} {where}")
    print(f"ruche_run_hosts: seed {a.seed}, {n} cases in {time.monotonic() - start:.0f} s, "
          f"{failures} failures")
    sys.exit(1 if failures else 0)


main()
