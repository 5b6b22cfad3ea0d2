"""Embedding throughput: pagecat's ``TextEncoder`` against sentence-transformers' ``encode``.

Same model (all-MiniLM-L6-v2, the packaged folder), same texts (WebKB pages, title + text as
pagecat extracts them, and AG News headlines + descriptions: long and short mixed), same
batch size, same max length, same threads, in the same process; each side is timed twice
and the best kept. The vectors are compared (max abs difference, min cosine).

``pagecat`` is the default encoder (``precision="auto"``): on a CPU with native bfloat16 (AMX
or AVX512-BF16) PyTorch under bfloat16 autocast, elsewhere float32 as in the next row; its
vectors are compared with the peer's (min cosine, max abs difference). ``pagecat float32`` is
``precision="float32"``: ONNX Runtime when installed, the same vectors as the peer to ~1e-7.
``pagecat torch`` is float32 on PyTorch (``backend="torch"``). ``pagecat int8``
(``TextEncoder(quantize=True)``: dynamic int8 linear layers) is NOT the same output: its quality
is the cosine to the float32 vectors.

    python benchmarks/embed.py            # 2,000 texts
    python benchmarks/embed.py --quick    # 160 texts, timed once
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
from common import Result, Timer, parse_args, peak_rss_mb, report

from pagecat.features.embed import TextEncoder, default_model_path


def load_texts(data: Path, n: int) -> list[str]:
    from models import load_webkb

    pages = load_webkb(data, step=4)
    texts = [f"{d['title']}\n{d['text']}" for d in pages][: n // 2]
    with gzip.open(data / "ag_news" / "test.csv.gz", "rt", encoding="utf-8") as f:
        texts += [f"{t}. {d}" for _, t, d in csv.reader(f)][: n - len(texts)]
    return texts


def best_of(fn, repeats: int = 2):
    best, out = None, None
    for _ in range(repeats):
        with Timer() as t:
            out = fn()
        best = t.seconds if best is None else min(best, t.seconds)
    return best, out


def main() -> None:
    def extra(p):
        p.add_argument("--texts", type=int, default=2000)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--max-length", type=int, default=128)
        p.add_argument("--threads", type=int, default=2)

    args = parse_args("embed", "TextEncoder vs sentence-transformers encode: throughput, same model and texts", extra)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    n = 160 if args.quick else args.texts
    repeats = 1 if args.quick else 2
    texts = load_texts(Path(args.data), n)
    bs, ml = args.batch_size, args.max_length
    ours = TextEncoder(max_length=ml, batch_size=bs)
    with Timer() as load:
        ours.encode(texts[:8])  # load outside the timing, as for the peer (the first run exports the ONNX file)
    print(f"pagecat default: {ours.backend_}, {ours.precision_} (loaded in {load.seconds:.1f}s)")
    exact = TextEncoder(max_length=ml, batch_size=bs, precision="float32")
    exact.encode(texts[:8])
    eager = TextEncoder(max_length=ml, batch_size=bs, backend="torch", precision="float32")
    eager.encode(texts[:8])
    st = SentenceTransformer(default_model_path(), device="cpu")
    st.max_seq_length = ml
    st.encode(texts[:8], batch_size=bs)
    int8 = TextEncoder(max_length=ml, batch_size=bs, quantize=True)
    int8.encode(texts[:8])
    with Timer() as total:
        st_s, st_x = best_of(lambda: st.encode(texts, batch_size=bs, normalize_embeddings=True,
                                               convert_to_numpy=True), repeats)
        pc_s, pc_x = best_of(lambda: ours.encode(texts), repeats)
        ex_s, ex_x = best_of(lambda: exact.encode(texts), repeats)
        pt_s, pt_x = best_of(lambda: eager.encode(texts), repeats)
        q_s, q_x = best_of(lambda: int8.encode(texts), repeats)
    cos = lambda a, b: float(np.min(np.sum(a * b, axis=1)))  # noqa: E731 (rows are unit length)
    ds = f"{len(texts)} texts"
    results = [
        Result("sentence-transformers", ds, "texts_per_s", len(texts) / st_s, "texts/s"),
        Result("pagecat", ds, "texts_per_s", len(texts) / pc_s, "texts/s"),
        Result("pagecat", ds, "max_abs_diff_vs_peer", float(np.abs(pc_x - st_x).max())),
        Result("pagecat", ds, "min_cosine_vs_peer", cos(pc_x, st_x)),
        Result("pagecat float32", ds, "texts_per_s", len(texts) / ex_s, "texts/s"),
        Result("pagecat float32", ds, "max_abs_diff_vs_peer", float(np.abs(ex_x - st_x).max())),
        Result("pagecat torch", ds, "texts_per_s", len(texts) / pt_s, "texts/s"),
        Result("pagecat torch", ds, "max_abs_diff_vs_peer", float(np.abs(pt_x - st_x).max())),
        Result("pagecat int8", ds, "texts_per_s", len(texts) / q_s, "texts/s"),
        Result("pagecat int8", ds, "min_cosine_vs_fp32", cos(q_x, ex_x)),
        Result("pagecat int8", ds, "mean_cosine_vs_fp32", float(np.mean(np.sum(q_x * ex_x, axis=1)))),
        Result("all", ds, "peak_rss_mb", peak_rss_mb(), "MB"),
    ]
    report("embed", results, args, ratios=[("pagecat", "sentence-transformers", "texts_per_s"),
                                           ("pagecat float32", "sentence-transformers", "texts_per_s"),
                                           ("pagecat torch", "sentence-transformers", "texts_per_s"),
                                           ("pagecat int8", "sentence-transformers", "texts_per_s")])
    print(f"time used: {total.seconds:.0f}s (batch size {bs}, max length {ml}, {args.threads} threads; "
          f"pagecat default: {ours.precision_} on {ours.backend_})")


if __name__ == "__main__":
    main()
