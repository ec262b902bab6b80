"""Compare two sweeps: per method and recall threshold, the best QPS of each and the ratio B/A.

    vqindex-bench compare before/results.json after/results.json

The best QPS at a threshold is the highest QPS among the points whose Recall@k reaches it
(one-query-per-call points also need their own recall_single to reach it), as in summary.md.
"""
import json
import os

__all__ = ["load_results", "best_qps", "compare", "compare_markdown"]


def load_results(path):
    """The report dict of a results.json file (or of the results.json inside a folder)."""
    p = os.path.join(path, "results.json") if os.path.isdir(path) else path
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p} not found (pass a results.json file or a sweep --out folder)")
    try:
        with open(p) as f:
            rep = json.load(f)
        rep["meta"], rep["results"]  # noqa: B018  (shape check)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{p} is not a vqindex-bench results.json ({e})") from None
    rep["_path"] = p
    return rep


def best_qps(rows, threshold, qkey):
    """The row with the highest `qkey` among rows reaching `threshold` recall, or None."""
    ok = [r for r in rows if r.get(qkey) and r["recall"] >= threshold]
    if qkey == "qps_single":
        ok = [r for r in ok if r.get("recall_single", r["recall"]) >= threshold]
    return max(ok, key=lambda r: r[qkey]) if ok else None


def compare(a, b, thresholds=(0.8, 0.9, 0.95, 0.99), qkeys=("qps_batch", "qps_single")):
    """Rows {method, qps: batch|single, threshold, a, b, ratio, a_point, b_point} for every
    method of either report (a or b None where a sweep has no point at that recall)."""
    methods = list(dict.fromkeys([r["method"] for r in a["results"]] + [r["method"] for r in b["results"]]))
    out = []
    for qkey in qkeys:
        for m in methods:
            ra = [r for r in a["results"] if r["method"] == m]
            rb = [r for r in b["results"] if r["method"] == m]
            for t in thresholds:
                pa, pb = best_qps(ra, t, qkey), best_qps(rb, t, qkey)
                va, vb = (pa or {}).get(qkey), (pb or {}).get(qkey)
                out.append({"method": m, "qps": qkey[4:], "threshold": t, "a": va, "b": vb,
                            "ratio": vb / va if va and vb else None,
                            "a_point": _label(pa), "b_point": _label(pb)})
    return out


def _label(r):
    if r is None:
        return None
    qp = ",".join(f"{k}={v}" for k, v in r["query_params"].items())
    return f"{r['index']}{' ' + qp if qp else ''}"


def _describe(rep):
    m = rep["meta"]
    env = m.get("environment") or {}
    return (f"{rep['_path']}: {m['dataset']} n={m['n']} d={m['d']} {m['metric']} k={m['k']} "
            f"threads={m['threads']}; vqindex {env.get('vqindex', '?')} "
            f"({(env.get('commit') or 'commit unknown')[:12]})")


def compare_markdown(a, b, rows):
    """The comparison as markdown text (with a warning when the sweeps differ in set-up)."""
    L = ["# QPS ratio B / A at recall thresholds", "", f"- A: {_describe(a)}", f"- B: {_describe(b)}"]
    diff = [k for k in ("dataset", "n", "d", "metric", "k", "threads") if a["meta"].get(k) != b["meta"].get(k)]
    if diff:
        L.append(f"- warning: the sweeps differ in {', '.join(diff)}; ratios compare different set-ups")
    L.append("")
    L.append("| method | qps | recall >= | A | B | B / A | A point | B point |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = (lambda v: "-" if v is None else f"{v:,.0f}")
        L.append(f"| {r['method']} | {r['qps']} | {r['threshold']:.2f} | {f(r['a'])} | {f(r['b'])} | "
                 f"{'-' if r['ratio'] is None else format(r['ratio'], '.3f')} | {r['a_point'] or '-'} | "
                 f"{r['b_point'] or '-'} |")
    return "\n".join(L) + "\n"
