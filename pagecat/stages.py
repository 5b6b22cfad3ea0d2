"""The pipeline's stages in order, named by import path.

``pagecat/`` imports no stage statically (DESIGN.md): the CLI and ``pipeline`` find a
stage's class here and import it when it is run.
"""

from __future__ import annotations

import importlib

from pagecat.stage import Stage

STAGE_CLASSES = {
    "crawl": "pagecat.etl.crawl.stage:CrawlStage",
    "parse": "pagecat.etl.parse:ParseStage",
    "dedup": "pagecat.etl.dedup.stage:DedupStage",
    "label": "pagecat.etl.label.stage:LabelStage",
    "features": "pagecat.features.stage:FeaturesStage",
    "train": "pagecat.train.stage:TrainStage",
    "predict": "pagecat.train.predict:PredictStage",
    "report": "pagecat.report.stage:ReportStage",
}
STAGE_ORDER = list(STAGE_CLASSES)


def get_stage(name: str) -> Stage:
    module, cls = STAGE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)()
