"""The metric names a PromQL expression uses (for the tests of alert rules and dashboards)."""
import re

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log2", "log10",
    "max_over_time", "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets", "round",
    "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector",
}
KEYWORDS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
            "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool", "inf", "nan"}


def metric_names(expr):
    """Every metric name in expr: identifiers that are not functions, keywords, label names in
    {...} or by/without/on(...) lists, or inside strings and [durations]."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    s = re.sub(r"\{[^}]*\}", "", s)                        # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)                       # ranges
    s = re.sub(r"(?<![A-Za-z_:])\d+(\.\d+)?([eE][-+]?\d+)?", "0", s)  # numbers, 1e-9 too
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        w = m.group(0)
        if w in FUNCTIONS or w in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", w):
            continue
        names.add(w)
    return names
