"""The one compiled module (etl/parse/_lexwalk.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pagecat.etl.parse._lexwalk", ["etl/parse/_lexwalk.c"],
                             extra_compile_args=["-O2", "-std=c11"], optional=True)])
