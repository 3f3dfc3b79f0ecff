"""Curation: Osprey-724K-style data from annotations, with a chat model or by rule.

- :mod:`.context`: each COCO image's region context from instances, referring expressions, captions;
- :mod:`.prompts`: what the chat model is asked per task and how its replies are read;
- :mod:`.pipeline`: ask, save answers as they arrive (resumable), write records and rejections;
- :mod:`.part_level`: part-level records from PACO part/attribute annotations (no model);
- :mod:`.positive_negative`: positive/negative questions with semantically close negatives;
- :mod:`.cli`: ``osprey data curate | part-level | pos-neg``.
"""
