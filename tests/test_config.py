import pytest

from pagecat.config import Config, load_config
from pagecat.errors import UsageError


def test_defaults_need_no_file():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.crawl.max_depth == 1 and cfg.train.models == ["xgboost", "linear"]


def test_yaml_file_and_overrides_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("crawl:\n  max_depth: 3\n  delay: 1\nfeatures:\n  tfidf:\n    n_features: 1024\n")
    cfg = load_config(f, overrides={"crawl": {"max_depth": 2}}, defaults={"crawl": {"retries": 7, "max_depth": 9}})
    assert cfg.crawl.max_depth == 2           # override beats file
    assert cfg.crawl.retries == 7             # defaults fill what the file leaves
    assert cfg.crawl.delay == 1.0 and isinstance(cfg.crawl.delay, float)  # int accepted for float
    assert cfg.features.tfidf.n_features == 1024 and cfg.features.tfidf.ngram_max == 2


@pytest.mark.parametrize("data, message", [
    ({"crawl": {"max_depht": 2}}, "config field crawl.max_depht: unknown key; did you mean crawl.max_depth?"),
    ({"crawll": {}}, "config field crawll: unknown key; did you mean crawl?"),
    ({"crawl": {"max_depth": "deep"}}, "config field crawl.max_depth: expected int, got 'deep'"),
    ({"crawl": {"obey_robots": "yes"}}, "config field crawl.obey_robots: expected bool"),
    ({"crawl": {"max_depth": True}}, "config field crawl.max_depth: expected int"),
    ({"label": {"unit": "paragraph"}}, "config field label.unit: 'paragraph' is not one of entry, page, site"),
    ({"train": {"models": ["xgbost"]}}, "unknown model 'xgbost'; did you mean xgboost?"),
    ({"train": {"test_size": 1.5}}, "train.test_size: must be between 0 and 1"),
    ({"label": {"holdout_column": "university"}}, "set both or neither"),
    ({"features": {"tfidf": {"n_feature": 3}}}, "did you mean features.tfidf.n_features?"),
])
def test_bad_fields_name_the_field_and_fix(data, message):
    with pytest.raises(UsageError) as e:
        load_config(overrides=data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("crawl:\n  max_depth: [1\n")
    with pytest.raises(UsageError, match=r"not valid YAML at line \d+"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        load_config(scalar)


def test_section_hash_tracks_settings_but_not_the_proxy_route():
    a = load_config()
    assert a.section_hash("crawl") == load_config().section_hash("crawl")
    assert a.section_hash("crawl") != load_config(overrides={"crawl": {"max_depth": 2}}).section_hash("crawl")
    assert a.section_hash("crawl") == load_config(
        overrides={"crawl": {"proxy": "http://127.0.0.1:9"}}).section_hash("crawl")
    assert a.section_hash("train") == load_config(overrides={"crawl": {"max_depth": 2}}).section_hash("train")


def test_yaml_round_trip(tmp_path):
    cfg = load_config(overrides={"crawl": {"urls": ["http://example.com/"]}})
    f = tmp_path / "round.yaml"
    f.write_text(cfg.to_yaml())
    assert load_config(f) == cfg
