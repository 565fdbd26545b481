"""The model: the PEFT-LoRA student and its encoders, one adapter per model family (CLIP, SigLIP), the image
preprocessing, the offline toy CLIP."""
