"""Schemathesis hooks for florenced (loaded through SCHEMATHESIS_HOOKS).

JSON Schema cannot say that an image must decode, that a region task's
query parameters carry its region once (`region` or <loc_> `text`), that min_length may not
exceed the max_length in force, that a region must lie inside the image, that
a text input's tokens must fit the model's positions, or that a raw image body
carries a task's input in the query. A *positive* case (data the schema calls
valid) is completed here with those facts so that it is a request the service
must accept. Negative cases are left as generated and no check is weakened.
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


def _input_kind(operation):
    """'text', 'region' or None, from the operation's JSON request schema name."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    if name.startswith("Text") or name == "VqaRequest":
        return "text"
    if name.startswith("Region"):
        return "region"
    return None


def _complete(fields):
    for key in ("question", "text"):
        value = fields.get(key)
        if isinstance(value, str) and not value.startswith("<loc_") and len(value) > MAX_TEXT:
            fields[key] = value[:MAX_TEXT].strip() or "what"
    if "region" in fields:
        fields["region"] = list(REGION)
        # A region task takes its region once: `region` or <loc_> `text` (the
        # body schemas say oneOf; query parameters and the coverage phase's
        # combinations cannot), so a positive case keeps the pixel region.
        text = fields.get("text")
        if isinstance(text, str) and text.startswith("<loc_"):
            del fields["text"]


# Tasks by the input they take (names and tokens), for /v1/analyze's task list.
TEXT_TASKS = {"caption_to_phrase_grounding", "referring_expression_segmentation",
              "open_vocabulary_detection", "vqa"}
REGION_TASKS = {"region_to_segmentation", "region_to_category", "region_to_description",
                "region_to_ocr"}


def _task_name(name):
    return name.strip("<>").lower() if isinstance(name, str) else name


def _complete_task(item):
    """An analyze task item given exactly the input its task takes (the item
    schema lists every task with both optional inputs)."""
    if not isinstance(item, dict):
        return item
    name = _task_name(item.get("task"))
    item = dict(item)
    if name in TEXT_TASKS:
        item.pop("region", None)
        text = item.get("text")
        if not isinstance(text, str) or not text.strip() or text.startswith("<loc_"):
            item["text"] = "what is this?"
        item["text"] = item["text"][:MAX_TEXT].strip() or "what"
    elif name in REGION_TASKS:
        item.pop("text", None)
        item["region"] = list(REGION)
    else:
        item.pop("text", None)
        item.pop("region", None)
    return item


@schemathesis.hook
def map_case(ctx, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    media = case.media_type or ""
    raw = media.startswith("image/")
    body = case.body if isinstance(case.body, dict) else {}
    query = dict(case.query or {})
    if raw:
        case.body = IMAGE
    for key in ("image", "file"):
        if key in body:
            body[key] = base64.b64encode(IMAGE).decode() if media.endswith("json") else IMAGE
    if raw:
        # A raw body carries no fields: the route's input comes from the query.
        kind = _input_kind(case.operation)
        if kind == "text" and not ({"text", "question"} & query.keys()):
            query["question" if case.operation.path == "/v1/vqa" else "text"] = "what is this?"
        if kind == "region" and not ({"text", "region"} & query.keys()):
            query["region"] = list(REGION)
    if not raw:
        query = {}
    _complete(body)
    _complete(query)
    if isinstance(body.get("tasks"), list):
        body["tasks"] = [_complete_task(t) for t in body["tasks"]]
    # The max_length in force: the request's, or the configured default (form
    # and query values may be text).
    given = [f["max_length"] for f in (body, query) if f.get("max_length") is not None]
    max_length = int(given[0]) if given else DEFAULT_MAX_LENGTH
    for fields in (body, query):
        if fields.get("min_length") is not None and int(fields["min_length"]) > max_length:
            fields["min_length"] = type(fields["min_length"])(max_length)
    case.query = query
    # These edits keep every value of the schema's type and inside its bounds, so
    # the case stays positive; schemathesis would otherwise revalidate the edited
    # components and, as it cannot validate binary payloads, call them invalid.
    case._record_starting_state()
    return case
