"""The package's metadata: the license it declares, the Pythons and systems it claims."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
"""The SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the standard text."""


class TestLicense:
    """LICENSE holds the Apache-2.0 text, the license the metadata declares."""

    def test_the_license_file_is_the_standard_apache_2_text(self) -> None:
        text = (ROOT / "LICENSE").read_bytes()
        assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256

    def test_the_metadata_declares_apache_2_and_ships_the_file(self) -> None:
        metadata = importlib.metadata.metadata("metricstream")
        assert metadata["License-Expression"] == "Apache-2.0"
        assert metadata.get_all("License-File") == ["LICENSE"]


class TestClassifiers:
    """The classifiers claim exactly the Pythons CI runs, and the systems."""

    def test_python_versions_match_requires_python(self) -> None:
        metadata = importlib.metadata.metadata("metricstream")
        classifiers = metadata.get_all("Classifier") or []
        minors = sorted(
            int(m.group(1))
            for c in classifiers
            if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
        )
        assert minors == [10, 11, 12, 13]
        assert metadata["Requires-Python"] == ">=3.10"
        assert "Operating System :: POSIX :: Linux" in classifiers
