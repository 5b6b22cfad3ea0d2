"""The config schema: one YAML file, every field with a default.

The schema is the dataclasses below. ``load_config`` validates a YAML mapping against them:
unknown keys are errors that suggest the nearest valid key, wrong types name the field and
the expected type. ``Config.section_hash`` gives the hash a stage's manifest records, so a
changed setting re-runs exactly the stages it touches.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pagecat.errors import UsageError

DEFAULT_LINK_PRIORITIES = [
    "about", "story", "what we do", "capabilities", "services", "products", "amenities", "overview",
]


@dataclass
class RunSettings:
    dir: str = "runs/default"  # the run directory: any fsspec path


@dataclass
class ClusterSettings:
    scheduler: str | None = None  # tcp://host:port of a running scheduler; None starts a LocalCluster
    n_workers: int | None = None  # LocalCluster workers; None sizes to the machine
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    dashboard_address: str = ":8787"
    connect_timeout: float = 10.0  # seconds to wait for a scheduler
    # light: Dask's statistical profiler off and its health and system monitors at 1-2 s, not
    # 20-500 ms (on 2 cores ~5% faster stages with 2 workers); full: Dask as configured (the
    # dashboard's Profile page fills)
    diagnostics: str = "light"


@dataclass
class CrawlSettings:
    seeds: str | None = None  # CSV or Parquet with url_id, url, optional name, label
    urls: list[str] = field(default_factory=list)  # or a plain list of URLs
    max_depth: int = 1
    max_pages_per_site: int = 10
    link_priorities: list[str] = field(default_factory=lambda: list(DEFAULT_LINK_PRIORITIES))
    concurrency: int = 64  # requests in flight per worker
    per_host_concurrency: int = 8
    delay: float = 0.0  # seconds between requests to one host
    timeout_connect: float = 10.0
    timeout_read: float = 20.0
    timeout_total: float = 30.0
    max_bytes: int = 5_000_000  # the rest of a body is dropped and the page marked truncated
    retries: int = 2
    backoff: float = 0.5  # first retry delay in seconds, doubled each time
    max_retry_after: float = 60.0  # a longer Retry-After (429/5xx) fails the URL instead of waiting
    max_redirects: int = 5
    user_agent: str = "pagecat/0.1 (+https://pypi.org/project/pagecat/)"
    headers: dict[str, str] = field(default_factory=dict)
    proxy: str | None = None  # http://host:port; with a proxy the crawler resolves no target host
    obey_robots: bool = True
    allow_private: bool = False  # allow targets on loopback/private/link-local addresses
    shards: int = 0  # parts, seeds grouped by registered domain; 0: one per domain, at most 16
    segment_pages: int = 500  # a shard's output is completed every this many pages: what a kill may redo
    segment_seconds: float = 60.0  # ... or this often, whichever comes first
    state_dir: str | None = None  # local folder for shard frontiers (sqlite); None: <run.dir>/crawl_state
    render_js: bool = False  # also load each fetched page in headless chromium; its DOM goes to the WARC
    browser_path: str | None = None  # chromium's executable; None: chromium/chromium-browser on PATH
    render_timeout: float = 20.0  # seconds for one page to load and run its scripts


@dataclass
class ParseSettings:
    inputs: list[str] = field(default_factory=list)  # WARC files, html folders, CSV/JSONL/Parquet; [] = crawl output
    min_words: int = 5  # pages with fewer main-text words are rejected
    text_column: str = "text"  # for tables
    html_column: str = "html"  # for tables
    url_column: str = "url"  # for tables
    batch_rows: int = 2000  # rows per written batch: bounds memory per worker
    partition_by: str = "none"  # pages layout: none (pages/<part>.parquet) | domain_bucket (pages/bucket=NN/<part>)
    buckets: int = 16  # domain_bucket: registered domains hashed into this many buckets
    row_group_rows: int = 10_000  # rows per Parquet row group (at most batch_rows of them are held at once)
    max_html_bytes: int = 10_000_000  # a record's body beyond this is cut before parsing (bounds memory)
    keep_full_text: bool = True  # also store all visible text (boilerplate included) per page


@dataclass
class DedupSettings:
    exact: bool = True  # drop pages whose normalised text hash was seen before
    url: bool = True  # drop pages whose canonical URL (pagecat.urls.canonicalize) was seen before
    near: bool = True  # drop near-duplicates: MinHash + LSH, verified by estimated Jaccard
    threshold: float = 0.8  # estimated Jaccard (word shingles) at or above which pages are near-duplicates
    num_perm: int = 128  # MinHash permutations (signature length)
    shingle_words: int = 5  # words per shingle
    seed: int = 1  # picks the MinHash permutations
    # Which page of a cluster is kept: criteria in order (labelled: named by label.labels; longest; earliest).
    keep: list[str] = field(default_factory=lambda: ["labelled", "longest", "earliest"])
    max_bucket_pairs: int = 50  # an LSH bucket with more pages is linked as a star, not every pair
    rows_per_reducer: int = 2_000_000  # band rows one group-by task holds: bounds its memory
    # Pages parts (Parquet bytes) one task signs and applies at most: consecutive smaller parts
    # share a task, so a crawl's 500-page parts do not each pay a task's fixed costs.
    task_bytes: int = 10_000_000
    batch_rows: int = 2000  # pages signed per batch: bounds memory per worker


@dataclass
class LabelRule:
    label: str = ""  # the label a matching doc gets (source "rules")
    # Conditions joined by "and": `field op value`, op one of == != < <= > >= in contains; fields are the
    # page's (url, host, domain, title, text, word_count, seed_id) or the joined labels-file row's columns.
    # e.g. "stars <= 2", "stars in 4, 5", "text contains syllabus and domain == cornell.edu". Never evaluated as code.
    when: str = ""


@dataclass
class LabelSettings:
    unit: str = "page"  # entry | page | site
    labels: str | None = None  # CSV/Parquet with the join key and a label column
    join_on: str = "url"  # url | url_id | domain
    label_column: str = "label"
    group_column: str | None = None  # a labels-file column carried into docs (e.g. university)
    holdout_column: str | None = None  # docs whose column equals holdout_value are kept untagged
    holdout_value: str | None = None
    classes: list[str] = field(default_factory=list)  # [] = every label seen
    rules: list[LabelRule] = field(default_factory=list)  # first matching rule votes its label
    descriptions: dict[str, str] = field(default_factory=dict)  # label -> description, for the zero-shot labeler
    zero_shot_model: str | None = None  # local transformers folder; None = the bundled all-MiniLM-L6-v2
    predictions: str | None = None  # a previous run's predictions (file or folder): doc_id/url, label, probability
    min_confidence: float = 0.8  # a model's (zero-shot, predictions) vote below this labels nothing
    review_below: float = 0.9  # a label from a model below this confidence goes to the review queue
    review_file: str | None = None  # the filled review queue (doc_id, label): a person's labels win
    # Class balance, recorded as each doc's sample_weight: none | cap | oversample | weights | ratio.
    balance: str = "none"
    balance_cap: int = 0  # cap: docs per class beyond this get weight 0
    balance_max_ratio: float = 3.0  # ratio: weights so the largest class weighs at most this times the smallest
    site_pages: int = 5  # unit site: a site's first N pages by link rank make its doc
    # unit site: characters kept per field of a site doc (name, domain words, tld, each title, each text)
    site_name_chars: int = 200
    site_title_chars: int = 200
    site_text_chars: int = 2000


@dataclass
class TfidfSettings:
    n_features: int = 2**18
    ngram_max: int = 2
    min_df: int = 2
    sublinear_tf: bool = True
    url_tokens: bool = False  # also hash the URL's words (as url_<word>): strong evidence for web pages
    char_ngrams: list[int] = field(default_factory=list)  # [lo, hi] char n-grams within words; [] = none


@dataclass
class EmbeddingSettings:
    enabled: bool = False  # also on when train.models names a model on embeddings (xgboost_emb, ...)
    model_path: str | None = None  # a local transformers folder; None = all-MiniLM-L6-v2 (packaged)
    max_length: int = 128  # tokens per text (per field)
    batch_size: int = 64
    # auto: float16 on GPU, bfloat16 on a CPU that multiplies it in hardware (AMX, AVX512-BF16), else float32
    precision: str = "auto"
    fields: list[str] = field(default_factory=list)  # docs columns encoded apart and joined; [] = title + text


@dataclass
class FeatureSettings:
    tfidf: TfidfSettings = field(default_factory=TfidfSettings)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)


@dataclass
class XGBoostSettings:
    n_estimators: int = 300
    max_depth: int = 6
    learning_rate: float = 0.1
    early_stopping_rounds: int = 20
    max_features: int = 20000  # TF-IDF columns kept for the trees (best chi2): tree cost grows with columns
    # auto | always | never: xgboost.dask on the cluster's workers; auto when the features outgrow one worker
    distributed: str = "auto"


@dataclass
class LinearSettings:
    c_grid: list[float] = field(default_factory=lambda: [1.0, 10.0, 100.0])  # C picked on validation log-loss
    max_iter: int = 1000


@dataclass
class TransformerSettings:
    epochs: int = 2  # a few passes: this is fine-tuning, and it has to be bearable on CPU
    max_length: int = 64  # tokens per text (per field)
    batch_size: int = 16
    learning_rate: float = 5e-5
    model_path: str | None = None  # None = features.embeddings.model_path, else all-MiniLM-L6-v2


@dataclass
class CharCnnSettings:
    max_chars: int = 512  # characters read per doc (Zhang et al. 2015: 1014)
    channels: int = 128  # per conv layer (the paper's small model: 256)
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3


@dataclass
class TrainSettings:
    models: list[str] = field(default_factory=lambda: ["xgboost", "linear"])
    test_size: float = 0.2
    seed: int = 0
    validation_size: float = 0.1  # share of the train split held out for early stopping, C and temperature
    group_by: str | None = None  # null | group | site | cluster: docs of one group never straddle the split
    class_weight: str | None = None  # null | balanced (weights each class by 1/its share; docs' sample_weight too)
    threads: int = 0  # threads per model fit; 0 = the worker's threads
    xgboost: XGBoostSettings = field(default_factory=XGBoostSettings)
    linear: LinearSettings = field(default_factory=LinearSettings)
    transformer: TransformerSettings = field(default_factory=TransformerSettings)
    charcnn: CharCnnSettings = field(default_factory=CharCnnSettings)


@dataclass
class PredictSettings:
    model: str = "best"  # a model name, or best (highest macro-F1)


@dataclass
class ReportSettings:
    title: str = "pagecat report"


@dataclass
class Config:
    run: RunSettings = field(default_factory=RunSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    parse: ParseSettings = field(default_factory=ParseSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    label: LabelSettings = field(default_factory=LabelSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    predict: PredictSettings = field(default_factory=PredictSettings)
    report: ReportSettings = field(default_factory=ReportSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def section_hash(self, *sections: str) -> str:
        """sha256 of the named sections, the identity a stage's manifest records.

        Fields in ``UNHASHED`` change how work is done, not what it produces, so changing
        them (a new proxy port, say) does not re-run a stage.
        """
        data = {s: dataclasses.asdict(getattr(self, s)) for s in sections}
        for dotted in UNHASHED:
            section, key = dotted.split(".")
            data.get(section, {}).pop(key, None)
        blob = json.dumps(data, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


UNHASHED = ("crawl.proxy",)

CHOICES = {
    "cluster.diagnostics": ("light", "full"),
    "parse.partition_by": ("none", "domain_bucket"),
    "label.unit": ("entry", "page", "site"),
    "label.join_on": ("url", "url_id", "domain"),
    "label.balance": ("none", "cap", "oversample", "weights", "ratio"),
    "train.xgboost.distributed": ("auto", "always", "never"),
    "features.embeddings.precision": ("auto", "float32", "bfloat16"),
}
MODEL_NAMES = ("xgboost", "linear", "xgboost_emb", "linear_emb", "transformer", "charcnn", "ensemble")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise UsageError(f"config field {where}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"config field {where}: expected a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise UsageError(f"config field {where}: expected {_type_name(tp)}, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"config field {where or '(top level)'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"; did you mean {where + '.' if where else ''}{near[0]}?" if near else (
                f"; valid keys: {', '.join(names)}")
            raise UsageError(f"config field {path}: unknown key{hint}")
        kwargs[key] = _coerce(value, hints[key], path)
        if path in CHOICES and kwargs[key] not in CHOICES[path]:
            raise UsageError(f"config field {path}: {kwargs[key]!r} is not one of {', '.join(CHOICES[path])}")
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    if not 0 < cfg.train.test_size < 1:
        raise UsageError(f"config field train.test_size: must be between 0 and 1, got {cfg.train.test_size}")
    for name in cfg.train.models:
        if name not in MODEL_NAMES:
            near = difflib.get_close_matches(name, MODEL_NAMES, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; choose from {', '.join(MODEL_NAMES)}"
            raise UsageError(f"config field train.models: unknown model {name!r}{hint}")
    if not cfg.train.models:
        raise UsageError("config field train.models: name at least one model")
    for key in ("max_depth", "max_pages_per_site", "concurrency", "per_host_concurrency", "retries"):
        if getattr(cfg.crawl, key) < (0 if key in ("max_depth", "retries") else 1):
            raise UsageError(f"config field crawl.{key}: must be positive, got {getattr(cfg.crawl, key)}")
    if (cfg.label.holdout_column is None) != (cfg.label.holdout_value is None):
        raise UsageError("config fields label.holdout_column and label.holdout_value: set both or neither")


def config_from_dict(data: Any) -> Config:
    cfg = _build(Config, data, "")
    _check_values(cfg)
    return cfg


def read_config_file(path: str | Path) -> dict:
    """The raw mapping in a YAML config file; UsageError for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file {path}: not found; pass an existing YAML file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"config file {path}: not valid YAML{at}; fix the syntax there") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a mapping of sections (run:, crawl:, ...)")
    return data


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                defaults: dict | None = None) -> Config:
    """Read and validate a YAML config. Precedence: ``overrides`` > the file > ``defaults``
    (nested mappings, e.g. {"crawl": {"max_depth": 2}}) > the schema's defaults.

    Raises UsageError with one line naming the file or field and the fix.
    """
    data = deep_merge(defaults or {}, read_config_file(path) if path is not None else {})
    return config_from_dict(deep_merge(data, overrides or {}))


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
