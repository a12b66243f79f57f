"""Uses the client that openapi-python-client generated from florenced's
/openapi.json, as a user would, without edits: caption (JSON and multipart),
VQA and OD. Prints the answers as JSON for the Rust test to compare.

usage: generated_client.py BASE_URL IMAGE.png
"""

import base64
import io
import json
import sys

from florenced_client import Client
from florenced_client.api.inference import caption, task_od, vqa
from florenced_client.models import CaptionForm, CaptionRequest, TaskRequest, VqaRequest
from florenced_client.types import File

base_url, image_path = sys.argv[1:3]
png = open(image_path, "rb").read()
image = base64.b64encode(png).decode()
client = Client(base_url=base_url, raise_on_unexpected_status=True, timeout=120)

got = {}
got["caption"] = caption.sync(client=client, body=CaptionRequest(image=image, max_length=20)).caption
form = CaptionForm(image=File(payload=io.BytesIO(png), file_name="scene.png", mime_type="image/png"), max_length=20)
got["caption_multipart"] = caption.sync(client=client, body=form).caption
got["answer"] = vqa.sync(
    client=client, body=VqaRequest(image=image, question="what is this?", max_length=20)
).answer
od = task_od.sync(client=client, body=TaskRequest(image=image, max_length=20))
got["od"] = od.result.to_dict()
print(json.dumps(got))
