"""The verdict, three ways: a markdown table (stdout, and appended to $GITHUB_STEP_SUMMARY
when set), JUnit XML (one testcase per case x class x layer) and JSON."""
import json
import os
import xml.etree.ElementTree as ET

from .verdict import FAILING


def markdown(rows, title, notes=()):
    bad = [r for r in rows if r["verdict"] in FAILING]
    out = [f"## {title}: {'FAIL' if bad else 'PASS'}", ""]
    out += [f"- {n}" for n in notes]
    counts = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    out.append(f"- {len(rows)} checks: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    out += ["", "| case | class | layer | verdict | what changed, by how much |",
            "|---|---|---|---|---|"]
    # findings first; passing exact rows are many and say little: only their count above
    shown = bad + [r for r in rows if r not in bad and (r["layer"] != "exact"
                                                        or r["verdict"] != "pass")]
    for r in shown:
        detail = r["detail"].replace("|", "\\|")
        out.append(f"| {r['case']} | {r['class']} | {r['layer']} | **{r['verdict']}** | {detail} |"
                   if r["verdict"] in FAILING else
                   f"| {r['case']} | {r['class']} | {r['layer']} | {r['verdict']} | {detail} |")
    return "\n".join(out) + "\n"


def junit(rows, title):
    bad = sum(r["verdict"] in FAILING for r in rows)
    skipped = sum(r["verdict"] == "skipped" for r in rows)
    suite = ET.Element("testsuite", name=title, tests=str(len(rows)), failures=str(bad),
                       skipped=str(skipped), errors="0")
    for r in rows:
        tc = ET.SubElement(suite, "testcase", classname=f"gate.{r['layer']}.{r['case']}",
                           name=f"{r['case']}.{r['class']}.{r['layer']}")
        if r["verdict"] in FAILING:
            f = ET.SubElement(tc, "failure", message=f"{r['verdict']}: {r['detail']}"[:500])
            f.text = r["detail"]
        elif r["verdict"] == "skipped":
            ET.SubElement(tc, "skipped", message=r["detail"])
        else:
            ET.SubElement(tc, "system-out").text = f"{r['verdict']}: {r['detail']}"
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode") + "\n"


def write_all(rows, title, out_dir, notes=()):
    md = markdown(rows, title, notes)
    print(md, end="")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(md + "\n")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "verdict.md"), "w") as f:
            f.write(md)
        with open(os.path.join(out_dir, "junit.xml"), "w") as f:
            f.write(junit(rows, title))
        with open(os.path.join(out_dir, "verdict.json"), "w") as f:
            json.dump({"schema": 1, "title": title, "notes": list(notes), "rows": rows}, f,
                      indent=1)
            f.write("\n")
