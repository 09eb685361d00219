#!/usr/bin/env python3
"""The GPU throughput benchmark's previous-vs-new plumbing, without a GPU or torch:
benchmarks/gpu_throughput.py's sides (--previous adds ruche_previous), the order of each round
(rotated with a previous ruche, ruche then torch without), rounds started only while one fits
the budget, ruche's runs read from a fake ruche's metrics.jsonl (the new one and the previous
one), the pooled figures, the new/previous ratios (pooled and per round) and the table; and
benchmarks/gpu_check.py's throughput step: the arguments it passes with and without
bundle/bin/ruche-previous, its key figure, and the MANIFEST lines it reads.

usage: gpu_throughput_plumbing.py WORKDIR
"""
import json
import os
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402  (standard library only)
import gpu_throughput as gt  # noqa: E402  (torch is imported by its workers, not here)

# A fake `ruche train`: writes metrics.jsonl as ruche does (a train line per --log-every steps,
# the first one the warm-up), img/s RATE times $FAKE_SCALE_<NAME>, or fails as told.
FAKE_RUCHE = r'''#!/usr/bin/env python3
import json, os, sys
NAME, RATE = {name!r}, {rate!r}
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("ruche 0.1.0 (" + NAME + ")")
    sys.exit(0)
if os.environ.get("FAKE_FAIL_" + NAME):
    print("error: CUDA error: out of memory", file=sys.stderr)
    sys.exit(1)
opt = lambda flag: args[args.index(flag) + 1]
assert args[0] == "train" and opt("--device") == "cuda", args
every, steps = int(opt("--log-every")), int(opt("--max-steps"))
scale = float(os.environ.get("FAKE_SCALE_" + NAME, "1"))
with open(os.path.join(opt("--out"), "metrics.jsonl"), "w") as f:
    for i, step in enumerate(range(every, steps + 1, every)):
        rate = (RATE * 0.5 if i == 0 else RATE * scale * (0.99, 1.0, 1.01)[(i - 1) % 3])
        f.write(json.dumps({{"split": "train", "step": step, "img_per_s": rate,
                            "gpu_peak_mib": {peak}}}) + "\n")
'''


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def close(a, b):
    return a is not None and abs(a - b) < 1e-9 * max(1, abs(b))


def fake_ruche(work, name, rate, peak):
    path = work / f"ruche_{name}"
    path.write_text(FAKE_RUCHE.format(name=name, rate=rate, peak=peak))
    path.chmod(0o755)
    return str(path)


def main() -> int:
    work = pathlib.Path(sys.argv[1]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    new = fake_ruche(work, "new", 1000.0, 9000)
    old = fake_ruche(work, "old", 800.0, 9500)
    parse = gt.build_parser().parse_args

    # ---- sides and the order of a round
    expect(gt.sides_of(parse(["r"])) == ["ruche", "torch", "torch_compile"],
           "without --previous the sides are as they were")
    expect(gt.sides_of(parse(["r", "--previous", old, "--sides", "ruche", "torch"]))
           == ["ruche", "ruche_previous", "torch"], "--previous adds ruche_previous after ruche")
    expect(all(gt.eager_order(["ruche", "torch", "torch_compile"], r) == ["ruche", "torch"]
               for r in range(4)), "without a previous ruche: ruche then torch, every round")
    sides = ["ruche", "ruche_previous", "torch"]
    orders = [gt.eager_order(sides, r) for r in range(3)]
    expect(all(sorted(o) == sorted(sides) for o in orders)
           and [o[0] for o in orders] == ["ruche", "ruche_previous", "torch"],
           f"with one: every side once a round, each first in turn: {orders}")

    # ---- ruche's runs from metrics.jsonl
    cfg = {"model": "resnet50", "batch": 256, "precision": "bf16", "window": 10, "windows": 3}
    r = gt.run_ruche(new, cfg, 60)
    expect(r.get("img_per_s", {}).get("samples") == [990.0, 1000.0, 1010.0]
           and r["peak_mib"] == 9000 and "--max-steps 40" in r["command"],
           "a ruche run: the windows after the warm-up interval, its peak, its command")
    os.environ["FAKE_FAIL_old"] = "1"
    r = gt.run_ruche(old, cfg, 60)
    del os.environ["FAKE_FAIL_old"]
    expect("out of memory" in r.get("error", "") and "img_per_s" not in r,
           f"a failing ruche: its error line ({r.get('error')})")

    # ---- rounds: ruche and the previous ruche for real (fake binaries), PyTorch made up;
    # a fake clock: each run takes 10 s of a 75 s budget
    clock = [0.0]
    calls = []

    def measure(row, side, cap, rnd=0):
        calls.append((side, rnd))
        os.environ["FAKE_SCALE_new"] = "1.1" if rnd == 1 else "1"
        if side in ("ruche", "ruche_previous"):
            res = gt.run_ruche(new if side == "ruche" else old, cfg, cap)
        else:
            res = {"img_per_s": gt.common.summary([1190.0, 1200.0, 1210.0]), "peak_mib": 8000.0}
        res["round"] = rnd
        row["runs"][side].append(res)
        clock[0] += 10

    rows = [{**cfg, "runs": {s: [] for s in sides}}]
    ran = gt.run_rounds(rows, sides, 4, measure, lambda: 75 - clock[0], lambda: clock[0])
    expect(ran == 2 and calls == [("ruche", 0), ("ruche_previous", 0), ("torch", 0),
                                  ("ruche_previous", 1), ("torch", 1), ("ruche", 1)],
           f"a round starts only while one fits (2 of 4 in 75 s at 30 s a round): {calls}")
    expect(gt.round_fits(45, 30) and not gt.round_fits(39, 30), "round_fits: 1.15x + 5 s")
    plain_calls = []
    plain = [{**cfg, "runs": {"ruche": [], "torch": []}}]
    gt.run_rounds(plain, ["ruche", "torch"], 3,
                  lambda row, side, cap, rnd=0: plain_calls.append((side, rnd)), lambda: 0.0)
    expect(plain_calls == [(s, r) for r in range(3) for s in ("ruche", "torch")],
           "without a previous ruche every round runs, as before (its runs say 'not run')")

    gt.pool_best(rows)
    gt.add_ratios(rows)
    row = rows[0]
    new_median = (1010.0 + 1089.0) / 2  # pooled: 990 1000 1010 1089 1100 1111
    expect(close(row["best"]["ruche"]["img_per_s"]["median"], new_median)
           and close(row["best"]["ruche_previous"]["img_per_s"]["median"], 800.0)
           and "round" not in row["best"]["ruche"],
           "pooled: each side's windows of all rounds")
    expect(close(row["ratio_vs_previous"], new_median / 800.0)
           and row["ratio_vs_previous_rounds"] == [1.25, 1.375]
           and close(row["ratio_vs_torch"], new_median / 1200.0)
           and close(row["ratio_previous_vs_torch"], 800.0 / 1200.0)
           and close(row["ratio_peak_mib_vs_previous"], 9000 / 9500),
           f"new/previous {row['ratio_vs_previous']:.4f} pooled, per round "
           f"{row['ratio_vs_previous_rounds']}; each vs eager")
    table = gt.table_lines(rows)
    expect("| previous img/s | vs previous |" in table[0]
           and table[1] == "|" + "---|" * 14
           and "| 800 (792-808) | 1.31x (1.25, 1.38) |" in table[2],
           f"the table's previous columns: {table[2]}")

    # without a previous ruche: no new keys, the table as it always was
    plain = [{**cfg, "runs": {"ruche": [{"img_per_s": gt.common.summary([1000.0])}],
                              "torch": [{"img_per_s": gt.common.summary([1250.0])}]}}]
    gt.pool_best(plain)
    gt.add_ratios(plain)
    table = gt.table_lines(plain)
    expect(not any("previous" in k for k in plain[0]) and table[0] ==
           "| model | batch | precision | ruche img/s | PyTorch eager | PyTorch compile | "
           "vs eager | vs compile | vs eager AMP | ruche peak MiB | PyTorch peak MiB | "
           "memory ratio |" and table[1] == "|" + "---|" * 12
           and table[2].startswith("| resnet50 | 256 | bf16 | 1000 (1000-1000) | 1250 "),
           "without a previous ruche the rows and table are unchanged")

    # ---- the whole driver, with and without --previous: the card and PyTorch's runs made up
    # (cuda_device, run_torch), ruche's runs by the fake binaries
    class FakeTorch:
        __version__ = "0.0-fake"
        version = type("V", (), {"cuda": "13.0"})
        cudnn = type("C", (), {"version": staticmethod(lambda: 91900)})
        backends = type("B", (), {"cudnn": cudnn})

    gt.cuda_device = lambda: ("Fake GPU", FakeTorch)
    gt.run_torch = lambda cfg, timeout: {
        "img_per_s": gt.common.summary([1190.0, 1200.0, 1210.0]), "peak_mib": 8000.0, "exit": 0}
    os.environ["FAKE_SCALE_new"] = "1"
    for previous in (True, False):
        out = work / ("main_previous" if previous else "main_plain")
        argv = [new, "--models", "resnet50", "--batches", "256", "--precisions", "bf16",
                "--sides", "ruche", "torch", "--windows", "3", "--rounds", "2",
                "--budget-s", "300", "--results-dir", str(out)]
        sys.argv = ["gpu_throughput.py"] + argv + (["--previous", old] if previous else [])
        expect(gt.main() == 0, f"main() {'with' if previous else 'without'} --previous")
        record = json.loads(next(out.glob("*.json")).read_text())
        page = next(out.glob("*.md")).read_text()
        row = record["results"][0]
        if previous:
            expect(record["versions"]["ruche_previous"] == "ruche 0.1.0 (old)"
                   and record["rounds_run"] == 2 and close(row["ratio_vs_previous"], 1.25)
                   and row["ratio_vs_previous_rounds"] == [1.25, 1.25]
                   and [r["round"] for r in row["runs"]["ruche_previous"]] == [0, 1],
                   "the record: both versions, the rounds run, new/previous 1.25x")
            expect("previous ruche ruche 0.1.0 (old)" in page
                   and f"New ruche {new} (`--version`: ruche 0.1.0 (new)) against the previous "
                   f"ruche {old} (`--version`: ruche 0.1.0 (old))" in page
                   and "| 1.25x (1.25, 1.25) |" in page and "2 of 2 round(s) ran" in page,
                   "the page names both binaries and versions, the ratio per round")
        else:
            expect(not any("previous" in k for k in list(record) + list(row))
                   and "ruche_previous" not in record["versions"] and "previous" not in page
                   and "1 process(es)" not in page and "2 process(es) per side" in page,
                   "without --previous: no previous in the record or the page")

    # ---- gpu_check's throughput step
    args = gpu_check.throughput_args("W/ruche", None, 60, "R")
    expect(args == ["W/ruche", "--models", "resnet50", "--batches", "256", "--precisions",
                    "bf16", "tf32", "--sides", "ruche", "torch", "torch_compile", "--windows",
                    "3", "--budget-s", "60", "--results-dir", "R"],
           "the step's arguments without bin/ruche-previous are as they were")
    args = gpu_check.throughput_args("W/ruche", "W/ruche-previous", 60, "R", ["new: c1"])
    parsed = parse(args)
    expect(parsed.previous == "W/ruche-previous" and parsed.precisions == ["bf16"]
           and parsed.rounds == 4 and parsed.note == ["new: c1"] and parsed.budget_s == 60
           and gt.sides_of(parsed) == ["ruche", "ruche_previous", "torch"],
           f"with it: --previous, bf16, up to 4 rounds, the note: {args}")
    key, ok, note = gpu_check.throughput_key(rows)
    expect(ok and not note and key == "bf16 1050 img/s = 0.87x vs eager, new/previous 1.31x "
           "(rounds 1.25, 1.38)", f"the key figure: {key}")
    failed = [dict(rows[0], best=dict(rows[0]["best"], ruche_previous={"error": "boom"}),
                   ratio_vs_previous=None, ratio_vs_previous_rounds=[])]
    key, ok, note = gpu_check.throughput_key(failed)
    expect(ok and key.endswith(", previous failed") and "boom" in note,
           f"the previous ruche failing is a note, not a failure: {key}; {note}")
    key, ok, note = gpu_check.throughput_key(plain)
    expect(key == "bf16 1000 img/s = 0.80x vs eager" and ok, f"plain key figure: {key}")
    manifest = work / "MANIFEST"
    manifest.write_text("ruche GPU bundle, built X on vm\ncommit abc1234 (dirty tree)\n"
                        "previous: bin/ruche-previous <- old.tar.xz (commit 0123abc, built Y), "
                        "`ruche --version`: ruche 0.1.0; lib/previous: none\nexecutables:\n")
    facts = gpu_check.manifest_facts(manifest)
    expect(facts == {"commit": "abc1234 (dirty tree)", "previous": "bin/ruche-previous <- "
                     "old.tar.xz (commit 0123abc, built Y), `ruche --version`: ruche 0.1.0; "
                     "lib/previous: none"}, f"MANIFEST's commit and previous lines: {facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
