"""Florence-2 task prompts, as transformers' Florence2Processor constructs them."""

TASK_PROMPTS_WITHOUT_INPUT = {
    "<OCR>": "What is the text in the image?",
    "<OCR_WITH_REGION>": "What is the text in the image, with regions?",
    "<CAPTION>": "What does the image describe?",
    "<DETAILED_CAPTION>": "Describe in detail what is shown in the image.",
    "<MORE_DETAILED_CAPTION>": "Describe with a paragraph what is shown in the image.",
    "<OD>": "Locate the objects with category name in the image.",
    "<DENSE_REGION_CAPTION>": "Locate the objects in the image, with their descriptions.",
    "<REGION_PROPOSAL>": "Locate the region proposals in the image.",
}

TASK_PROMPTS_WITH_INPUT = {
    "<CAPTION_TO_PHRASE_GROUNDING>": "Locate the phrases in the caption: {input}",
    "<REFERRING_EXPRESSION_SEGMENTATION>": "Locate {input} in the image with mask",
    "<REGION_TO_SEGMENTATION>": "What is the polygon mask of region {input}",
    "<OPEN_VOCABULARY_DETECTION>": "Locate {input} in the image.",
    "<REGION_TO_CATEGORY>": "What is the region {input}?",
    "<REGION_TO_DESCRIPTION>": "What does the region {input} describe?",
    "<REGION_TO_OCR>": "What text is in the region {input}?",
}


def construct_prompt(prompt: str) -> str:
    """Same rules as Florence2Processor._construct_prompts (used only for training batches)."""
    for token, text in TASK_PROMPTS_WITHOUT_INPUT.items():
        if token in prompt:
            if prompt != token:
                raise ValueError(f"Task token {token} should be the only content in the prompt.")
            return text
    for token, text in TASK_PROMPTS_WITH_INPUT.items():
        if token in prompt:
            return text.format(input=prompt.replace(token, "").strip())
    return prompt
