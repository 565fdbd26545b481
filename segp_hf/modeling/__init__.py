"""The model: the PEFT-LoRA CLIP student and its encoders, the image preprocessing, the offline toy CLIP."""
