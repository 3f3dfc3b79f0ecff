"""Every parsed fixture sample means the same to the text renderer as its official string.

``osprey.text.render`` reads ``<regionK>`` as region K, and official strings as "the i-th
``<mask><pos>`` is region i"; for samples built from official data the two readings must agree.
"""

from __future__ import annotations

import random

import pytest
from data_fixture_paths import SOURCE_FIXTURES

from osprey.data.parsers import PARSERS, parse_records
from osprey.data.sample import official_text

render = pytest.importorskip("osprey.text.render")


@pytest.mark.parametrize("name", sorted(SOURCE_FIXTURES))
def test_region_tags_agree_with_the_official_order(name: str) -> None:
    path, images = SOURCE_FIXTURES[name]
    parser = PARSERS[name]
    for seed in range(3):
        report = parse_records(parser, parser.load(path, image_root=images), rng=random.Random(seed))
        assert report.errors == []
        for sample in report.samples:
            used = 0
            for turn in sample.turns[0::2]:
                ours = render.parse_segments(turn.text, num_regions=len(sample.regions))
                official = render.parse_official(
                    official_text(turn.text), first_region=used, num_regions=len(sample.regions)
                )
                assert ours == official
                used += sum(isinstance(s, render.RegionSlot) for s in ours)
            assert used == len(sample.regions)  # each mask exactly once, as the official splice needs
