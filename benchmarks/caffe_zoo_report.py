#!/usr/bin/env python3
"""Runs `ruche import caffe` over Caffe's own files (its examples and model zoo, taken from public
copies and never committed) and writes what became of each: docs/caffe-zoo-report.md.

ZOO holds one folder per model with its files as they were published, and a source.txt naming
where they came from (repository@commit path), and an input.txt with C,H,W where the data, not
the net, gives the sample shape (a user's --input). In a folder, a file whose name has "solver"
in it is a solver; it is imported with the folder's training net (the net with a Data, ImageData
or HDF5Data layer, else the first net). Every net is also imported alone. Report lines that
differ only in the layers they name are listed once, with their count.

usage: caffe_zoo_report.py RUCHE_BINARY ZOO [-o docs/caffe-zoo-report.md]
"""
import argparse
import datetime
import pathlib
import re
import subprocess
import tempfile

DATA_LAYER = re.compile(r'type:\s*"(Data|ImageData|HDF5Data)"')


def imports(ruche, net, solver, shape, out):
    """One import: (True, report lines) or (False, the error line)."""
    args = [ruche, "import", "caffe", str(net), "-o", str(out)]
    if solver is not None:
        args += ["--solver", str(solver)]
    if shape:
        args += ["--input", shape]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit {p.returncode}"]
        return False, [lines[-1].removeprefix("ruche: error: ")]
    report = out / "import-report.txt"
    return True, report.read_text().splitlines() if report.exists() else []


def short(line, folder):
    """A report line without the folder's path in front of the file name."""
    return line.replace(str(folder) + "/", "")


def grouped(lines):
    """Lines that differ only in the quoted names: the first of each, with how many there are."""
    groups = {}
    for line in lines:
        groups.setdefault(re.sub(r"'[^']*'", "''", line), []).append(line)
    return [g[0] + (f" (and {len(g) - 1} more like it)" if len(g) > 1 else "")
            for g in groups.values()]


def model_rows(ruche, folder, tmp):
    shape_file = folder / "input.txt"
    shape = shape_file.read_text().strip() if shape_file.exists() else ""
    files = sorted(folder.glob("*.prototxt"))
    solvers = [f for f in files if "solver" in f.name]
    nets = [f for f in files if f not in solvers]
    train = next((n for n in nets if DATA_LAYER.search(n.read_text())), nets[0] if nets else None)
    runs = [(n, None) for n in nets]
    runs += [(train, s) for s in solvers] if train is not None else []
    rows = []
    for net, solver in sorted(runs, key=lambda r: (r[0].name, r[1].name if r[1] else "")):
        out = tmp / f"{folder.name}-{len(rows)}"
        ok, lines = imports(ruche, net, solver, shape, out)
        rows.append((net.name + (f" + {solver.name}" if solver else ""), ok,
                     [short(line, folder) for line in lines]))
    return rows


def table_cell(text):
    return text.replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ruche")
    parser.add_argument("zoo", type=pathlib.Path)
    parser.add_argument("-o", "--output", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[1] / "docs" /
                        "caffe-zoo-report.md")
    a = parser.parse_args()
    models = sorted(p for p in a.zoo.iterdir() if p.is_dir())
    summary, details = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in models:
            source_file = folder / "source.txt"
            source = source_file.read_text().strip() if source_file.exists() else "?"
            rows = model_rows(a.ruche, folder, pathlib.Path(tmp))
            details.append(f"\n### {folder.name}\n\nFrom {source}.\n")
            seen = set()  # a net's lines, once for all the solvers imported with it
            for name, ok, lines in rows:
                if ok:
                    verdict = f"imports; {len(lines)} report line{'s' * (len(lines) != 1)}"
                else:
                    verdict = f"**refused**: {lines[0]}"
                summary.append(f"| {folder.name} | {table_cell(name)} | {table_cell(verdict)} |")
                details.append(f"- `{name}`: " + ("imports" if ok else "refused"))
                details.extend(f"  - {line}" for line in grouped(lines) if line not in seen)
                seen.update(grouped(lines))
    imported = sum(" imports;" in row for row in summary)
    text = [
        "# Caffe's model zoo through `ruche import caffe`",
        "",
        f"What `ruche import caffe` made of Caffe's own published files on "
        f"{datetime.date.today().isoformat()}: {imported} of {len(summary)} imports succeeded. "
        "The files are not in this repository (each model's source is named below); "
        "[benchmarks/caffe_zoo_report.py](../benchmarks/caffe_zoo_report.py) wrote this page "
        "from a folder of them. Every net is imported alone, and each solver together with its "
        "folder's training net. Where a training net reads its dataset's mean file (Caffe computes "
        "it from the training set; model folders do not publish it), the model's source line "
        "says a stand-in was used: what is checked here is the mapping, not the values. "
        "An import that succeeds writes import-report.txt: every change of meaning and every "
        "dropped setting, one line each, listed under Details. A refusal is one line naming "
        "the file and the thing it could not map.",
        "",
        "| model | files | result |",
        "| --- | --- | --- |",
        *summary,
        "",
        "## Details",
        *details,
        "",
    ]
    a.output.write_text("\n".join(text))
    print(f"{a.output}: {imported} of {len(summary)} imports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
