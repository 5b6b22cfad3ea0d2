"""pagecat: raw web content to a trained category classifier and a report, on Dask."""

__version__ = "0.1.0"
