"""The documentation is checked against the program, so that it cannot drift:

- every YAML block in docs/*.md and README.md that is a pipeline (its top-level keys are
  pipeline keys) passes `spate validate` — the loader refuses unknown keys, so a documented key
  the loader does not know fails here; a block followed by "is rejected with" must produce
  exactly the errors the next block shows; deployment blocks pass `spate orchestrate --check`;
- every pipeline and deployment file in examples/ validates;
- every key the pipeline loader reads (the `get_*("key")` calls in src/config/pipeline.cc) is
  named in docs/configuration.md or the page it links for that part;
- every `spate ...` command in a shell block exists (`spate SUB --help` exits 0) and every
  `--option` it uses is one that subcommand has;
- the read-only commands of getting-started.md and of operations.md (troubleshooting) run, with
  exit 0, against a live quickstart;
- every relative link (file and #anchor) in docs/, README.md and the alert rules' runbook_url
  resolves.
The getting-started walk-through itself (quickstart, demo load, the UI with an alert) is what
tests/e2e/test_web_ui.py runs."""
import glob
import os
import re
import shlex
import subprocess

from spate_e2e import *

ROOT = os.getcwd()
tmp = tempdir()
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]
PIPELINE_KEYS = {"name", "data_dir", "server", "log", "topics", "ingestion", "plugins", "processors", "analytics",
                 "logging", "health", "notifiers"}


def rel(p):
    return os.path.relpath(p, ROOT)


def blocks(path, langs):
    """(line, language, text, what follows) of the fenced blocks of the file `path` (or of the
    markdown text itself, when it has a newline) in `langs` ("" = no language)."""
    text = path if "\n" in path else open(path).read()
    for m in re.finditer(r"^```([A-Za-z]*)\n(.*?)^```", text, re.S | re.M):
        if m.group(1) in langs:
            yield text[:m.start()].count("\n") + 1, m.group(1), m.group(2), text[m.end():]


def env_for(block):
    """Plausible values for the ${VARS} a documented block uses without a default."""
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    for var in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", block):
        if "DSN" in var or "POSTGRES" in var or "DATABASE" in var or var.startswith("PG"):
            env[var] = "postgresql://spate@127.0.0.1:5432/spate"
        elif "URL" in var or "WEBHOOK" in var:
            env[var] = "https://hooks.example.com/x"
        elif "KAFKA" in var or "BROKER" in var:
            env[var] = "127.0.0.1:9092"
        elif "TOKEN" in var:
            env[var] = "doc-token-0123456789abcdef"
        elif "EMAIL" in var:
            env[var] = "ops@example.com"
        else:
            env[var] = "doc-value"
    return env


# ---------------------------------------------------------------- YAML blocks
validated = 0
for doc in DOCS:
    for line, _, block, after in blocks(doc, {"yaml", "yml"}):
        keys = set(re.findall(r"^([A-Za-z_]+):", block, re.M))
        where = f"{rel(doc)}:{line}"
        if re.search(r"\{\.\.\.\}|^\s*\.\.\.\s*$", block, re.M):
            continue  # a reference listing with elisions ({...}), not a file to run
        if keys and keys <= PIPELINE_KEYS:
            rejected = re.match(r"\s*\n?is rejected with[^\n]*\n+```\n(.*?)```", after, re.S)
            text = block if "name" in keys else "name: doc-example\n" + block
            path = os.path.join(tmp, "quickstart.yaml" if rejected else f"block-{validated}.yaml")
            with open(path, "w") as f:
                f.write(text)
            env = env_for(block)
            if rejected:
                for var in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", block):
                    env.pop(var, None)  # the documented errors include the unset variable
            r = subprocess.run([SPATE, "validate", path], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
            if rejected:
                want = [l for l in rejected.group(1).splitlines() if l.strip()]
                got = [l.replace(path, "quickstart.yaml") for l in r.stderr.splitlines() if l.strip()]
                check(r.returncode == 2 and got == want, f"{where}: the documented errors are the real ones:\n"
                      f"documented: {want}\nreal:       {got}")
            else:
                check(r.returncode == 0, f"{where}: the documented pipeline validates: {r.stdout}{r.stderr}")
            validated += 1
        elif "components" in keys and "pipeline" in keys:
            path = os.path.join(os.path.dirname(doc), f"doc-deployment-{validated}.yaml")
            with open(path, "w") as f:
                f.write(block)
            try:
                r = subprocess.run([SPATE, "orchestrate", "--check", path], capture_output=True, text=True,
                                   env=env_for(block), cwd=ROOT, timeout=60)
            finally:
                os.remove(path)
            check(r.returncode == 0, f"{where}: the documented deployment passes orchestrate --check: {r.stdout}{r.stderr}")
            validated += 1
check(validated >= 15, f"the YAML blocks of the docs were validated: {validated}")

for ex in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")) + glob.glob(os.path.join(ROOT, "examples", "*", "*.yaml"))):
    text = open(ex).read()
    deployment = re.search(r"^components:", text, re.M) is not None
    cmd = [SPATE, "orchestrate", "--check", ex] if deployment else [SPATE, "validate", ex]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env_for(text), cwd=ROOT, timeout=60)
    check(r.returncode == 0, f"{rel(ex)} validates: {r.stdout}{r.stderr}")

# ---------------------------------------------------------------- every loader key is documented
KEY_CALL = re.compile(r'\b(?:get_[a-z_]+|require)\(\s*"([a-z_0-9]+)"')


def keys_in(patterns):
    out = set()
    for pat in patterns:
        for f in glob.glob(os.path.join(ROOT, pat)):
            out |= set(KEY_CALL.findall(open(f).read()))
    return out


def documented_in(page):
    """The text of docs/PAGE and of the docs pages it links."""
    text = open(os.path.join(ROOT, "docs", page)).read()
    linked = set(re.findall(r"\]\(([a-z_-]+\.md)", text))
    return text + "".join(open(os.path.join(ROOT, "docs", p)).read() for p in linked
                          if os.path.exists(os.path.join(ROOT, "docs", p)))


def word(k, text):
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(k) + r"(?![A-Za-z0-9_])", text) is not None


pipeline_keys = keys_in(["src/config/pipeline.cc", "src/process/steps/*.cc", "src/ingest/sources/*_source_type.cc"])
deployment_keys = keys_in(["src/orchestrate/deployment.cc"])
check(len(pipeline_keys) >= 150 and len(deployment_keys) >= 20,
      f"the loaders' keys were found: {len(pipeline_keys)} pipeline, {len(deployment_keys)} deployment")
reference = documented_in("configuration.md")
for k in sorted(pipeline_keys):
    check(word(k, reference), f"the pipeline key `{k}` is documented in docs/configuration.md or a page it links")
orchestration = documented_in("orchestrator.md") + documented_in("kubernetes.md")
for k in sorted(deployment_keys):
    check(word(k, orchestration), f"the deployment key `{k}` is documented in docs/orchestrator.md, kubernetes.md or a page they link")
keys = pipeline_keys | deployment_keys

# ---------------------------------------------------------------- spate commands in shell blocks
help_cache = {}


def help_of(chain):
    if chain not in help_cache:
        r = subprocess.run([SPATE, *chain, "--help"], capture_output=True, text=True, timeout=30)
        help_cache[chain] = (r.returncode, r.stdout + r.stderr)
    return help_cache[chain]


subcommands = set(re.findall(r"^  ([a-z0-9-]+)\s", help_of(())[1], re.M))
commands = 0


def shown_commands(doc, section=None):
    """(line, text) of every command line in the shell blocks of `doc` and of every inline
    `spate ...` code span (placeholders in [brackets] unwrapped)."""
    text = open(doc).read()
    start = 0
    if section:  # only from the heading `section` to the next heading of its level
        m = re.search(r"^(#+) " + re.escape(section) + r"\s*$", text, re.M)
        if not m:
            return
        start = text[:m.start()].count("\n")
        end = re.search(r"^#{1,%d} " % len(m.group(1)), text[m.end():], re.M)
        text = text[m.start():m.end() + (end.start() if end else len(text))]
    for line, _, block, _ in blocks(text, {"sh", "bash", "console", "shell", ""}):
        joined = re.sub(r"\\\n\s*", " ", block)
        for i, raw in enumerate(joined.splitlines()):
            yield start + line + i, raw
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for m in re.finditer(r"`((?:[A-Z_]+=\S+\s+)?(?:\./)?(?:build/)?spate [^`]+)`", prose):
        yield (start + prose[:m.start()].count("\n") + 1,
               re.sub(r"\s+", " ", m.group(1).replace("[", " ").replace("]", " ")))


def command_problems(raw):
    """None when `raw` holds no spate command; else the list of what is wrong with it."""
    text = re.sub(r"^\$\s+", "", raw.split(" #", 1)[0].strip())
    m = re.search(r"(?:^|[|;&]\s*|^[A-Z_]+=\S+\s+)(?:\./)?(?:build/)?spate\s+([a-z].*)", text)
    if not m:
        return None
    try:
        words = shlex.split(m.group(1).split("|")[0])
    except ValueError:
        words = m.group(1).split()
    if not words or words[0] not in subcommands:
        return [] if words and words[0] in ("--help", "--version") else [f"`spate {words[0] if words else ''}` is no command"]
    chain = (words[0],)
    rc, out = help_of(chain)
    if "Subcommands:" in out and len(words) > 1:
        sub = set(re.findall(r"^  ([a-z0-9-]+)\s", out.split("Subcommands:")[-1], re.M))
        if words[1] in sub:
            chain = (words[0], words[1])
            rc, out = help_of(chain)
    problems = [] if rc == 0 else [f"`spate {' '.join(chain)} --help` exits {rc}"]
    for w in words[len(chain):]:
        opt = w.split("=", 1)[0]
        if opt.startswith("--") and len(opt) > 2 and not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", out):
            problems.append(f"`spate {' '.join(chain)}` has no option {opt}")
    return problems


check(command_problems("./build/spate consume --topic x --no-such-option") == ["`spate consume` has no option --no-such-option"]
      and command_problems("spate tpoics list") and command_problems("make run") is None,
      "control: the command check finds a wrong option and a wrong command")
for doc in DOCS:
    for line, raw in shown_commands(doc):
        problems = command_problems(raw)
        if problems is None:
            continue
        check(not problems, f"{rel(doc)}:{line}: {raw.strip()}: {'; '.join(problems)}")
        commands += 1
check(commands >= 30, f"the spate commands of the docs were checked: {commands}")


# ---------------------------------------------------------------- the read-only commands, for real
# The commands of getting-started and troubleshooting that only read (or send one event) run
# against a live quickstart; ports are rewritten to its port. Commands with placeholders
# (TOPIC, EXPR, ...), the orchestrator's (:9090), servers and load generators are left out.
port = free_port()
quick = subprocess.Popen([SPATE, "run", "examples/quickstart.yaml", "--data-dir", os.path.join(tmp, "quick"),
                          "--port", str(port), "--no-status-line"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ran = 0
try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "the quickstart for the doc commands is ready")
    for page, section in (("getting-started.md", None), ("operations.md", "Troubleshooting")):
        for line, raw in shown_commands(os.path.join(ROOT, "docs", page), section):
            text = re.sub(r"^\$\s+", "", raw.split(" #", 1)[0].strip())
            if not re.match(r"(\./build/spate|spate|curl) ", text):
                continue
            args = re.sub(r"^[A-Z_]+=\S+\s+", "", text)
            if ("9090" in text or re.search(r"\b[A-Z]{3,}\b", args.replace("-XPOST", "")) or " tap " in f" {text} "
                    or ("replay" in text and "--dry-run" not in text) or "--follow" in text or "\\|" in text
                    or re.match(r"(\./build/spate|spate) (run|orchestrate)\b", args)):
                continue
            cmd = re.sub(r"(localhost|127\.0\.0\.1):8080", f"127.0.0.1:{port}", text)
            cmd = re.sub(r"^(\./build/spate|spate) ", SPATE + " ", cmd)
            if re.match(r"\S+ top\b", cmd):
                cmd += "" if "--once" in cmd else " --once --interval 0.2"
                cmd += "" if "--url" in cmd else f" --url http://127.0.0.1:{port}"
            r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=60)
            check(r.returncode == 0, f"docs/{page}:{line}: `{text}` runs: rc={r.returncode} {r.stdout[-300:]}{r.stderr[-300:]}")
            ran += 1
finally:
    stop_process(quick)
check(ran >= 6, f"the read-only commands of the docs ran: {ran}")

# ---------------------------------------------------------------- links and anchors


def slugs(path):
    """GitHub's heading anchors of a markdown file."""
    out = set()
    seen = {}
    in_code = False
    for l in open(path):
        if l.startswith("```"):
            in_code = not in_code
        if in_code or not l.startswith("#"):
            continue
        title = l.lstrip("#").strip()
        s = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


links = 0
sources = DOCS + [os.path.join(ROOT, "deploy", "grafana", "README.md"), os.path.join(ROOT, "deploy", "prometheus", "README.md")]
for doc in sources:
    if not os.path.exists(doc):
        continue
    text = re.sub(r"```.*?```", "", open(doc).read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        check(os.path.exists(full), f"{rel(doc)}: the link {target} names an existing file")
        if anchor and os.path.exists(full) and full.endswith(".md"):
            check(anchor in slugs(full), f"{rel(doc)}: the link {target} names an existing heading")
        links += 1
alerts = open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")).read()
for url in set(re.findall(r'runbook_url:\s*"([^"]+)"', alerts)):
    path, _, anchor = url.partition("#")
    check(os.path.exists(os.path.join(ROOT, path)) and anchor in slugs(os.path.join(ROOT, path)),
          f"alerts.yaml runbook_url {url} exists")
check(links >= 30, f"the links of the docs were checked: {links}")
print(f"{validated} YAML blocks, {len(keys)} loader keys, {commands} commands checked, {ran} run, {links} links")
finish("test_docs")
