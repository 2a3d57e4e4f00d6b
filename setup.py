"""Build the optional compiled helpers of the batch form and the encoders (metricstream/_speedups.c).

The package works without them: if the build fails (no C compiler), the
install goes on and the pure-Python code runs instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "metricstream._speedups",
            ["metricstream/_speedups.c"],
            optional=True,
        ),
    ]
)
