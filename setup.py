"""The compiled modules (etl/parse/_lexwalk.c, etl/dedup/_minhash.c), each optional: where one
does not build, its pure-Python path does the same work. Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pagecat.etl.parse._lexwalk", ["etl/parse/_lexwalk.c"],
                             extra_compile_args=["-O2", "-std=c11"], optional=True),
                   Extension("pagecat.etl.dedup._minhash", ["etl/dedup/_minhash.c"],
                             extra_compile_args=["-O2", "-std=c11"], optional=True)])
