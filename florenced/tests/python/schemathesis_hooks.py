"""Schemathesis hooks for florenced (loaded through SCHEMATHESIS_HOOKS).

The document says exactly what the service takes, with two facts JSON Schema
cannot hold: an image must be a real image (and a region must lie inside it),
and lengths must agree (min_length at most the max_length in force; a text
input's tokens must fit the model's positions with the image's). A *positive*
case (data the schema calls valid) gets a real image, a region inside it and
consistent lengths here; nothing else is changed (no field is added or
removed), negative cases are left as generated and no check is weakened.
"""

import base64
import os

import schemathesis

IMAGE = open(os.environ["FLORENCED_TEST_IMAGE"], "rb").read()
WIDTH, HEIGHT = (int(v) for v in os.environ["FLORENCED_TEST_IMAGE_SIZE"].split("x"))
DEFAULT_MAX_LENGTH = int(os.environ["FLORENCED_DEFAULT_MAX_LENGTH"])
# The tiny test model has 1024 text positions shared with the image tokens, so
# 1024 arbitrary characters may not fit; generated text inputs are shortened.
MAX_TEXT = 40
REGION = [0, 0, WIDTH - 1, HEIGHT - 1]


def _fit(fields):
    """A region inside the real image; text inputs whose tokens fit."""
    for key in ("question", "text"):
        value = fields.get(key)
        if isinstance(value, str) and not value.startswith("<loc_") and len(value) > MAX_TEXT:
            fields[key] = value[:MAX_TEXT].strip() or "what"
    if isinstance(fields.get("region"), list):
        fields["region"] = list(REGION)


def _consistent_lengths(fields):
    """min_length at most the max_length in force (form and query values are text)."""
    given = fields.get("max_length")
    max_length = int(given) if given is not None else DEFAULT_MAX_LENGTH
    if fields.get("min_length") is not None and int(fields["min_length"]) > max_length:
        fields["min_length"] = type(fields["min_length"])(max_length)


@schemathesis.hook
def map_case(ctx, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    media = case.media_type or ""
    if media.startswith("image/"):
        case.body = IMAGE
    body = case.body if isinstance(case.body, dict) else {}
    for key in ("image", "file"):
        if key in body:
            body[key] = base64.b64encode(IMAGE).decode() if media.endswith("json") else IMAGE
    # A raw image body's fields are in the query, any other body's in the body.
    fields = case.query if media.startswith("image/") and case.query else body
    _fit(fields)
    _consistent_lengths(fields)
    for item in body.get("tasks") or []:
        if isinstance(item, dict):
            _fit(item)
    # These edits keep every value of the schema's type and inside its bounds, so
    # the case stays positive; schemathesis would otherwise revalidate the edited
    # components and, as it cannot validate binary payloads, call them invalid.
    case._record_starting_state()
    return case
