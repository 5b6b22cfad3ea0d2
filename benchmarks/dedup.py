"""Near-duplicate detection: pagecat's MinHash + LSH against datasketch and rensa, side by side.

Corpora: the WebKB pages (text of each HTML file, lxml) and the Common Crawl samples (the WET
file's plain text and the text of the sample WARCs' HTML responses). Into each, near-duplicates
are planted by small random edits (one word substituted, inserted or deleted per 100 words):
on WebKB one edited copy of every 10th document of at least 100 words; on the Common Crawl
sample, which holds only 17 pages, 8 independently edited copies of every page (a *family* of
9 versions of one page), so that precision is measured over hundreds of pairs, not a handful.

Ground truth, the same for every system: the *planted pairs* are the pairs of one family (the
original and its copies, and two copies of one original: all are edits of one page). Every
reported pair also gets its true Jaccard, computed exactly from its shingle sets; a pair that
was not planted but reaches the threshold is a *natural* duplicate (WebKB holds many; the
Common Crawl pages of one site share templates). Reported:

- recall: share of the planted pairs whose true Jaccard reaches the threshold that were found;
- precision_planted: share of the reported pairs that were planted;
- precision: share of the reported pairs that were planted or are natural duplicates.

Every system runs at the same settings (Jaccard threshold 0.8, 128 permutations, word 5-gram
shingles) and the same pipeline: signatures, LSH candidates, candidates verified (datasketch
and rensa by their estimated Jaccard; pagecat by its estimate, and by the exact Jaccard of its
shingle fingerprints when the estimate lies within 3 standard deviations of the threshold).
Measured on one core (one thread each; the rate is documents per second of process CPU time,
best of 3 after a warm-up, so other programs on a shared machine do not count): documents/s
end to end (tokenising included). pagecat signs with its compiled kernel (etl/dedup/_minhash.c)
when the install built it, and says so on stderr; without it, the numpy path finds the same
pairs (the same signatures bit for bit), more slowly. datasketch and rensa get their shingles
as Python strings (their usual input); rensa's LSH needs bands dividing num_perm: 16 bands of 8
rows (pagecat and datasketch pick 9 x 13 themselves).

Then the dedup stage itself on a LocalCluster (wall clock): 1 worker against 2 (speed-up), on
warm workers (the stage's modules imported and an Arrow array built, as after an earlier stage
of ``pagecat run``; best of 3) and cold ones (not with --quick), with the seconds of each pass,
the workers' user and system CPU seconds and page faults, this process's CPU seconds (the
scheduler, the client and the nannies), and the CPU seconds other programs took from the machine
during the run (on a shared machine they lengthen the wall clock, the 2-worker run most); then
(not with --quick) the same 2 workers against 1 worker confined to one CPU, this process
included: on a machine of 2 CPUs, the 1-worker run above leaves the scheduler and the client a
CPU of their own, which the 2-worker run has to share with the tasks; then the speed-up (warm)
on the doubled corpus, where the stage's fixed latencies (the rounds of tasks between the
passes) weigh half as much; and the peak memory of the busiest worker at both sizes (it should
stay flat: the work is per part).
The stage's corpus is WebKB plus word-order permutations of it (as many documents again each,
none a duplicate), x8 (x1 with --quick), in parts of about 4,400 pages (11 MB of text, 4 MB of
Parquet) each, which the stage packs two to a task (``dedup.task_bytes``, 10 MB; with --quick,
whose corpus is a sample of WebKB, one task per part: packed, it would be one task); the doubled
corpus has twice as many parts of the same size. Last (not with --quick), the x8 corpus in parts
of 500 pages, the size of a crawl's segments: one task per part against the default packing.

    python benchmarks/dedup.py [--quick] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per system

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from benchmarks.common import Result, Timer, own_peak_rss_mb, parse_args, report  # noqa: E402

if TYPE_CHECKING:
    from pagecat.runs import Manifest

THRESHOLD, NUM_PERM, SHINGLE = 0.8, 128, 5
WORD = re.compile(r"\w+")


# -- corpora ----------------------------------------------------------------------------------
def html_text(body: bytes) -> str:
    from lxml import html as lxml_html

    try:
        return " ".join(lxml_html.fromstring(body).text_content().split())
    except Exception:  # empty or unparsable HTML
        return ""


def webkb_texts(data: Path, limit: int | None) -> list[str]:
    texts = []
    with tarfile.open(data / "webkb" / "webkb_raw_html.tar.gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            raw = tar.extractfile(member).read()
            body = raw.split(b"\n\n", 1)[1] if raw.startswith(b"HTTP/") and b"\n\n" in raw else raw
            text = html_text(body)
            if len(text.split()) >= 20:
                texts.append(text)
            if limit and len(texts) >= limit:
                break
    return texts


def common_crawl_texts(data: Path) -> list[str]:
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    folder = data / "warc_samples"
    for path in sorted(folder.glob("*.warc*.gz")):
        if path.name.endswith(".wat.gz"):
            continue
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "conversion":
                    text = " ".join(rec.content_stream().read().decode("utf-8", "replace").split())
                elif rec.rec_type == "response" and "html" in (rec.http_headers.get_header("Content-Type") or ""):
                    text = html_text(rec.content_stream().read())
                else:
                    continue
                if len(text.split()) >= 20:
                    texts.append(text)
    return texts


def edited(text: str, rng: random.Random) -> str:
    """``text`` with one random word substituted, inserted or deleted per 100 words."""
    words = text.split()
    for _ in range(max(1, len(words) // 100)):
        j = rng.randrange(len(words))
        op = rng.random()
        if op < 1 / 3:
            words[j] = f"w{rng.randrange(10**6)}"
        elif op < 2 / 3:
            words.insert(j, f"w{rng.randrange(10**6)}")
        else:
            del words[j]
    return " ".join(words)


def plant(texts: list[str], seed: int = 0, every: int = 10, copies: int = 1) -> tuple[list[str], set[tuple[int, int]]]:
    """Texts plus ``copies`` edited copies of every ``every``-th text of >= 100 words; the planted
    pairs: every pair of one family (a text and its copies)."""
    rng = random.Random(seed)
    out, pairs = list(texts), set()
    for i, text in enumerate(texts):
        if i % every or len(text.split()) < 100:
            continue
        family = [i]
        for _ in range(copies):
            out.append(edited(text, rng))
            family.append(len(out) - 1)
        pairs.update((a, b) for k, a in enumerate(family) for b in family[k + 1:])
    return out, pairs


def shingle_strings(text: str) -> list[str]:
    words = WORD.findall(text.lower())
    return [" ".join(words[i:i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 1))] if words else []


class Truth:
    """Exact shingle Jaccard of any pair of ``texts`` (shingle sets built once per text)."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self._sets: dict[int, set[str]] = {}

    def _set(self, i: int) -> set[str]:
        if i not in self._sets:
            self._sets[i] = set(shingle_strings(self.texts[i]))
        return self._sets[i]

    def jaccard(self, i: int, j: int) -> float:
        x, y = self._set(i), self._set(j)
        return len(x & y) / len(x | y) if x | y else 0.0


def score(found: set[tuple[int, int]], planted: set[tuple[int, int]], truth: Truth) -> dict[str, float]:
    """recall (planted pairs at or above the threshold), precision_planted, precision (planted or natural)."""
    to_find = {p for p in planted if truth.jaccard(*p) >= THRESHOLD}
    natural = {p for p in found - planted if truth.jaccard(*p) >= THRESHOLD}
    n = len(found)
    return {"recall": len(found & to_find) / len(to_find) if to_find else 1.0,
            "precision_planted": len(found & planted) / n if n else 1.0,
            "precision": len(found & (planted | natural)) / n if n else 1.0}


# -- the systems, one thread each ------------------------------------------------------------------
def run_pagecat(texts: list[str], exact: bool = True) -> set[tuple[int, int]]:
    from pagecat.etl.dedup import NearDuplicateFinder

    finder = NearDuplicateFinder(threshold=THRESHOLD, num_perm=NUM_PERM, shingle_words=SHINGLE, exact=exact)
    return {tuple(p) for p in finder.fit(pa.array(texts)).pairs_.tolist()}


def run_pagecat_estimate(texts: list[str]) -> set[tuple[int, int]]:
    """pagecat verifying by the estimate alone (no exact check of borderline pairs): what the check buys."""
    return run_pagecat(texts, exact=False)


def run_datasketch(texts: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    sketches = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode() for s in shingle_strings(text)])
        lsh.insert(i, m)
        sketches.append(m)
    found = set()
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j > i and m.jaccard(sketches[j]) >= THRESHOLD:
                found.add((i, j))
    return found


def run_rensa(texts: list[str]) -> set[tuple[int, int]]:
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, 16)
    sketches = []
    for i, text in enumerate(texts):
        m = RMinHash(NUM_PERM, 1)
        m.update(shingle_strings(text))
        lsh.insert(i, m)
        sketches.append(m)
    found = set()
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j > i and m.jaccard(sketches[j]) >= THRESHOLD:
                found.add((i, j))
    return found


SYSTEMS = {"pagecat": run_pagecat, "pagecat-estimate-only": run_pagecat_estimate, "datasketch": run_datasketch,
           "rensa": run_rensa}


def measure(name: str, texts: list[str], planted: set, truth: Truth, dataset: str, repeat: int,
            metrics: bool = True) -> list[Result]:
    """docs/s per core (process CPU time: every system runs on one thread, and CPU time does not
    count the time other programs on a shared machine take), best of ``repeat`` after a warm-up;
    with ``metrics``, recall and precision of the pairs found."""
    fn = SYSTEMS[name]
    fn(texts[:50])  # imports, one-time tables (LSH parameters, ...) are not what is measured
    best, found = float("inf"), set()
    for _ in range(repeat):
        t0 = time.process_time()
        found = fn(texts)
        best = min(best, time.process_time() - t0)
    out = [Result(name, dataset, "docs_per_s", len(texts) / best, "docs/s/core")]
    if metrics:
        out += [Result(name, dataset, metric, value) for metric, value in score(found, planted, truth).items()]
        out.append(Result(name, dataset, "pairs_found", len(found), "pairs"))
    return out


# -- the stage on a LocalCluster ---------------------------------------------------------------------
def write_pages(run, texts: list[str], parts: int) -> None:
    from pagecat.runs import Manifest
    from pagecat.schemas import PAGES, table

    rows = []
    for i, text in enumerate(texts):
        url = f"http://site{i % 97}.example/page{i}"
        rows.append({"page_id": hashlib.sha1(url.encode()).hexdigest(), "url": url, "host": url.split("/")[2],
                     "domain": url.split("/")[2], "title": "", "text": text, "word_count": len(text.split()),
                     "text_hash": hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()})
    for p in range(parts):
        run.write_table(run.path("pages", f"part-{p:05d}.parquet"), table(rows[p::parts], PAGES))
    Manifest(stage="parse", status="complete", config_hash="bench", finished_at="now").save(run)


def _worker_usage() -> tuple[float, float, int]:
    """(user CPU s, system CPU s, minor page faults) of this worker process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used (Linux /proc/stat; nan elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _import_stage() -> None:
    """What a worker has done after any earlier stage: the stage's modules imported, and an Arrow
    array built (pyarrow imports pandas at the first one, ~0.2 s, once per process)."""
    import pyarrow

    import pagecat.etl.dedup.stage  # noqa: F401

    pyarrow.array([0])


def _can_pin() -> bool:
    """Whether this process may be confined to fewer CPUs (Linux) and has 2 or more."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


@contextlib.contextmanager
def _on_cpus(count: int | None) -> Iterator[None]:
    """This process (and what it starts meanwhile) on the first ``count`` of its CPUs for the
    block; None: as it is."""
    if count is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(before)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_stage(texts: list[str], workers: int, parts: int, warm: bool = True, cpus: int | None = None,
              task_bytes: int | None = None) -> tuple[float, float, Manifest, dict[str, float]]:
    """(seconds, peak MB of the busiest worker, manifest, CPU use) of the dedup stage on a fresh
    LocalCluster, started by ``pagecat.cluster.connect``. CPU use: the workers' user and system
    seconds and minor page faults (summed), this process's CPU seconds (the scheduler, the
    client and the nannies run here: on a machine whose cores all run workers, they take their
    time from the tasks), and the CPU seconds other programs took from the machine meanwhile
    (its busy time less this process's and the workers'), which a shared machine's other work
    adds to the wall clock.

    ``warm``: the workers import the stage's modules and build an Arrow array before the clock
    starts, as they have after any earlier stage of ``pagecat run`` (one cluster serves every
    stage); cold, each worker's first task pays the imports (about half a second, pyarrow's
    lazy import of pandas included).

    ``cpus``: this process, and the cluster it starts (the scheduler, the client and the workers
    inherit its CPU affinity), run on only that many of the machine's CPUs. ``task_bytes``:
    ``dedup.task_bytes``, when not the default."""
    from pagecat.cluster import connect
    from pagecat.config import config_from_dict
    from pagecat.etl.dedup.stage import DedupStage
    from pagecat.runs import RunDir
    from pagecat.stage import execute

    with tempfile.TemporaryDirectory() as tmp, _on_cpus(cpus):
        run = RunDir(tmp)
        write_pages(run, texts, parts)
        cfg = config_from_dict({
            "dedup": {"threshold": THRESHOLD, "num_perm": NUM_PERM, "shingle_words": SHINGLE,
                      **({"task_bytes": task_bytes} if task_bytes else {})},
            "cluster": {"n_workers": workers, "threads_per_worker": 1, "memory_limit": "4GiB",
                        "dashboard_address": ":0"}})
        # the cluster pagecat starts (its settings and workers' environment), as ``pagecat run`` does
        with connect(cfg, quiet=True) as client, client.cluster:
            if warm:
                client.run(_import_stage)
            before, busy, own = client.run(_worker_usage), _machine_busy_seconds(), time.process_time()
            with Timer() as t:
                m = execute(DedupStage(), cfg, run, client, progress=False)
            after, busy, own = client.run(_worker_usage), _machine_busy_seconds() - busy, time.process_time() - own
            peak = max(client.run(own_peak_rss_mb).values())
    used = [sum(after[w][i] - before[w][i] for w in after) for i in range(3)]
    usage = {"worker_user_seconds": used[0], "worker_sys_seconds": used[1], "worker_page_faults": used[2],
             "scheduler_and_client_cpu_seconds": own,
             "other_programs_cpu_seconds": max(busy - used[0] - used[1] - own, 0.0)}
    return t.seconds, peak, m, usage


def best_runs(texts: list[str], parts: int, reps: int, warm: bool = True, pin: bool = False,
              task_bytes: int | None = None) -> tuple[tuple, tuple]:
    """The fastest of ``reps`` ``run_stage`` results on 1 worker and on 2, the two alternating:
    a shared machine's other work lengthens some runs, never shortens one. ``pin``: each run on
    as many CPUs as it has workers (``run_stage``'s ``cpus``)."""
    runs = [tuple(run_stage(texts, w, parts, warm, cpus=w if pin else None, task_bytes=task_bytes) for w in (1, 2))
            for _ in range(reps)]
    return tuple(min((r[i] for r in runs), key=lambda one: one[0]) for i in (0, 1))


def speedup_results(name: str, t1: float, t2: float, suffix: str) -> list[Result]:
    """The seconds on 1 and 2 workers and their ratio, each metric name ending in ``suffix``."""
    return [Result("pagecat-stage", name, f"seconds_1_worker{suffix}", t1, "s"),
            Result("pagecat-stage", name, f"seconds_2_workers{suffix}", t2, "s"),
            Result("pagecat-stage", name, f"speedup_2_workers{suffix}", t1 / t2, "x")]


def small_parts(texts: list[str], name: str) -> list[Result]:
    """The stage on parts of 500 pages, as a crawl's segments reach it, on 1 and 2 workers (warm,
    best of 2): one task per part (``dedup.task_bytes`` 1) against the default packing."""
    parts = -(-len(texts) // 500)
    results = []
    for label, task_bytes in (("_task_per_part", 1), ("", None)):
        (t1, *_), (t2, *_) = best_runs(texts, parts, 2, task_bytes=task_bytes)
        results += speedup_results(name, t1, t2, label)
    return results


def stage_scaling(texts: list[str], parts: int, name: str, quick: bool, detail: bool) -> list[Result]:
    """The stage on 1 and 2 workers: seconds, speedup and the workers' CPU; with ``detail``, also
    cold runs, where the time goes and the corpus counts; always the peak memory per worker."""
    results = []
    for warm in (True,) if quick or not detail else (True, False):
        task_bytes = 1 if quick else None  # quick's parts are small enough to pack into one task
        (t1, _, m1, u1), (t2, peak, m2, u2) = best_runs(texts, parts, 3 if warm and not quick else 1, warm,
                                                        task_bytes=task_bytes)
        suffix = "" if warm else "_cold"
        results += speedup_results(name, t1, t2, suffix)
        for workers, u in ((1, u1), (2, u2)):  # what the workers did, and what else ran on the machine
            units = {"worker_page_faults": "faults"}
            results += [Result("pagecat-stage", name, f"{k}_{workers}w{suffix}", v, units.get(k, "s"))
                        for k, v in u.items()]
        if warm:
            results.append(Result("pagecat-stage", name, "peak_mb_per_worker", peak, "MB"))
        if warm and detail:
            for workers, m in ((1, m1), (2, m2)):  # where the time goes
                phases = m.extra["finish_seconds"]
                results.append(Result("pagecat-stage", name, f"pass1_seconds_{workers}w",
                                      m.seconds - sum(phases.values()), "s"))
                results += [Result("pagecat-stage", name, f"{k}_seconds_{workers}w", v, "s") for k, v in phases.items()]
            if not quick and _can_pin():
                # the same 2 workers against 1 worker on 1 CPU: the scheduler and the client then
                # share the CPUs in both runs, where above the 1-worker run has a CPU to spare for them
                (t1c, *_), (t2c, *_) = best_runs(texts, parts, 3, pin=True)
                results += [Result("pagecat-stage", name, "seconds_1_worker_on_1_cpu", t1c, "s"),
                            Result("pagecat-stage", name, "seconds_2_workers_on_2_cpus", t2c, "s"),
                            Result("pagecat-stage", name, "speedup_2_workers_on_2_cpus_vs_1", t1c / t2c, "x")]
            results += [Result("pagecat-stage", name, "pages", m1.counts["in"], "pages"),
                        Result("pagecat-stage", name, "dropped", m1.counts["dropped"], "pages"),
                        Result("pagecat-stage", name, "exact_checked_pairs", m1.extra["exact_checked_pairs"], "pairs")]
    return results


def main() -> None:
    args = parse_args("dedup", "Near-duplicate detection against datasketch and rensa")
    data = Path(args.data)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    limit = 1500 if args.quick else None
    corpora = {"webkb": plant(webkb_texts(data, limit)),
               "commoncrawl": plant(common_crawl_texts(data), every=1, copies=8)}
    from pagecat.etl.dedup import MinHasher

    print(f"pagecat signs with {'its compiled kernel' if MinHasher().compiled else 'the numpy path'}", file=sys.stderr)
    results: list[Result] = []
    for dataset, (texts, planted) in corpora.items():
        truth = Truth(texts)
        print(f"{dataset}: {len(texts)} docs, {len(planted)} planted near-duplicate pairs", file=sys.stderr)
        repeat = 5 if len(texts) < 200 else 3
        for name in SYSTEMS:
            if name == "datasketch" and not args.quick and len(texts) > 3000:
                # datasketch is ~20x slower: time it on the first 3000 docs (rate only), score on all
                results += measure(name, texts[:3000], planted, truth, dataset, 1, metrics=False)
                results += [r for r in measure(name, texts, planted, truth, dataset, 1) if r.metric != "docs_per_s"]
                continue
            results += measure(name, texts, planted, truth, dataset, repeat)

    # the stage: 1 vs 2 workers, and memory per worker as the corpus doubles (parts of equal size)
    base = corpora["webkb"][0]
    size = 1 if args.quick else 8

    def interleaved(text: str, stride: int, backwards: bool) -> str:
        """The words reordered by stride (and reversed): a new doc, no duplicate of any other."""
        words = text.split()
        order = [w for j in reversed(range(stride)) for w in words[j::stride]]
        return " ".join(reversed(order) if backwards else order)

    variants = [[interleaved(t, stride, backwards) for t in base]
                for stride in range(1, size + 1) for backwards in (False, True)]
    corpus = [t for v in variants[:size] for t in v]
    doubled = [t for v in variants[:2 * size] for t in v]
    parts = 2 * size  # ~4,400 pages (4 MB of Parquet) a part; the stage packs two to a task
    for texts, n_parts in ((corpus, parts), (doubled, 2 * parts)):
        results += stage_scaling(texts, n_parts, f"webkb x{n_parts // 2}", args.quick, detail=texts is corpus)
    if not args.quick:
        results += small_parts(corpus, f"webkb x{size}, 500-page parts")
    report("dedup", results, args, ratios=[("pagecat", "datasketch", "docs_per_s"),
                                           ("pagecat", "rensa", "docs_per_s")])


if __name__ == "__main__":
    main()
