"""Model families (modeling/families.py, issue 26): any CLIPModel and SiglipModel (SigLIP, SigLIP 2) through one
adapter each. Tiny random models made here (conftest: ``save_tiny_clip`` at two image sizes, ``save_tiny_siglip``
with its own word-level tokenizer), offline. Each wiring test is checked against the model's own outputs
(transformers' SiglipModel forward, its towers' ``pooler_output``), never our helpers, and has a mutation in
tests/wiring_mutations.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import save_tiny_clip, tiny_settings
from transformers import default_data_collator

from segp_hf import cli, load_task
from segp_hf.errors import RecipeError
from segp_hf.method.anchors import AnchorSet
from segp_hf.method.task_state import TaskState
from segp_hf.modeling.student import build_lora_clip, clip_of, encode_images, encode_texts, family_of, logit_scale_of

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
FAST = ["--num_tasks", "2", "--max_train_images_per_class", "2", "--max_eval_images_per_class", "2",
        "--num_train_epochs", "1", "--zero_shot_max_images", "10", "--anchors_per_class", "1", "--dpgd_steps", "1",
        "--lora_r", "4", "--disable_tqdm", "true"]


# ------------------------------------------------------------------------------------ end to end
def test_a_tiny_siglip_trains_two_shapes_tasks_and_its_tasks_load_back(tiny_siglip_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--model_name_or_path", tiny_siglip_dir, "--output_dir", str(out), *FAST]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["acc_matrix"]) == 2 and "shapes_heldout" in json.dumps(results)  # zero-shot measured too
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for task, seen in ((0, 25), (1, 50)):
        loaded = load_task(str(out), task=task)
        assert type(loaded.model).__name__ == "SiglipModel"
        assert loaded.text_inputs["input_ids"].shape == (seen, 12)  # padded to SigLIP's length, as trained
        unmerged = load_task(str(out), task=task, merge=False)
        torch.testing.assert_close(loaded.logits(pixels), unmerged.logits(pixels), atol=1e-4, rtol=1e-4)
    card = (out / "task-1" / "README.md").read_text()
    assert f'SiglipModel.from_pretrained("{tiny_siglip_dir}")' in card and "both SigLIP towers" in card


@pytest.mark.parametrize("image_size", [16, 24])
def test_tiny_clips_of_two_image_sizes_run_two_tasks_and_load_back(tiny_benchmark, tmp_path, image_size):
    from segp_hf.recipe import parse_config
    from segp_hf.run.continual import run_continual

    model_dir = save_tiny_clip(tmp_path / "clip", image_size=image_size)
    out = tmp_path / "run"
    results = run_continual(*parse_config(tiny_settings(model_dir, out, num_tasks=2)), benchmark=tiny_benchmark)
    assert len(results["acc_matrix"]) == 2
    image = tiny_benchmark.test[0]["image"]
    for task in (0, 1):
        loaded = load_task(str(out), task=task)
        assert type(loaded.model).__name__ == "CLIPModel"
        pixels = loaded.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        assert pixels.shape[-2:] == (image_size, image_size)  # the checkpoint's own processor
        assert loaded.predict([image]).logits.shape == (1, 3 * (task + 1))
    card = (out / "task-1" / "README.md").read_text()
    assert f'CLIPModel.from_pretrained("{model_dir}")' in card


# ------------------------------------------------------------------------------------ SigLIP wiring
def _siglip_trainer(tiny_siglip_dir, tiny_benchmark, tmp_path, **overrides):
    from segp_hf.recipe import parse_config
    from segp_hf.run.continual import build_scenario
    from segp_hf.trainer import SeGPTrainer

    model_args, data_args, config = parse_config(tiny_settings(tiny_siglip_dir, tmp_path, **overrides))
    scenario, template = build_scenario(model_args, data_args, tiny_benchmark)
    torch.manual_seed(0)
    model = build_lora_clip(tiny_siglip_dir, r=4)
    tokenizer = family_of(model).tokenizer(tiny_siglip_dir, clip_of(model).config)
    from segp_hf.data.scenario import prompts_for, tokenize_prompts

    prompts = prompts_for(scenario.ordered_class_names, template)
    state = TaskState.for_run(config.variant, logit_scale=logit_scale_of(model),
                              text_inputs=tokenize_prompts(tokenizer, prompts))
    train = scenario.train_dataset(1)
    state.begin_task(1, scenario.bounds[1], train, default_data_collator)
    g = torch.Generator().manual_seed(5)
    state.anchors = AnchorSet(pixel_values=torch.randn(6, 3, 16, 16, generator=g),
                              targets=torch.arange(6) % state.start,
                              teacher_logits=5 * torch.randn(6, state.start, generator=g),
                              teacher_raw=torch.randn(6, 32, generator=g))
    state.reference_text = F.normalize(torch.randn(state.end, 32, generator=g), dim=-1)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    trainer._anchor_batch = lambda: torch.tensor([0, 2, 5])
    batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(4)]))
    return model, trainer, batch


def test_siglip_loss_reaches_lora_B_of_both_towers(tiny_siglip_dir, tiny_benchmark, tmp_path):
    model, trainer, batch = _siglip_trainer(tiny_siglip_dir, tiny_benchmark, tmp_path)
    trainer.compute_loss(model, batch).backward()
    for tower in ("text_model", "vision_model"):
        grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n and f".{tower}." in n]
        assert grads and all(g is not None for g in grads)
        assert torch.cat([g.flatten() for g in grads]).abs().max() > 1e-7, f"no gradient reaches the {tower}'s lora_B"


def test_siglip_logit_bias_changes_no_logit_the_method_uses_nor_any_prediction(tiny_siglip_dir, tiny_benchmark,
                                                                             tmp_path):
    """The method's logits are exp(t) * cos (families.py): SigLIP's own logits minus its bias, the same argmax;
    the loss and the scale do not move when the bias does."""
    model, trainer, batch = _siglip_trainer(tiny_siglip_dir, tiny_benchmark, tmp_path)
    siglip = clip_of(model)
    text = trainer.task_state.seen_text_inputs("cpu")
    with torch.no_grad():
        own = siglip(input_ids=text["input_ids"], pixel_values=batch["pixel_values"]).logits_per_image
        ours = logit_scale_of(model) * encode_images(model, batch["pixel_values"])[0] @ encode_texts(model, **text).T
        torch.testing.assert_close(own - float(siglip.logit_bias), ours, atol=1e-5, rtol=1e-5)
        assert torch.equal(own.argmax(-1), ours.argmax(-1))
        losses, scales = [], []
        for bias in (-5.0, 40.0):
            siglip.logit_bias.fill_(bias)
            scales.append(logit_scale_of(model))
            losses.append(float(trainer.compute_loss(model, batch)))
    assert scales[0] == scales[1] == pytest.approx(10.0) and losses[0] == losses[1]


@pytest.mark.parametrize("raw_feature", ["pre_projection", "projected"])
def test_siglip_raw_feature_is_the_attention_pooling_heads_output(tiny_siglip_dir, raw_feature):
    model = build_lora_clip(tiny_siglip_dir, r=4)
    siglip = clip_of(model)
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeds, raw = encode_images(model, pixels, raw_feature)
        vision = siglip.vision_model
        head_output = vision.head(vision.post_layernorm(vision(pixel_values=pixels).last_hidden_state))
        image_embeds = siglip.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(raw, head_output)
    torch.testing.assert_close(embeds, F.normalize(image_embeds, dim=-1))


def test_siglip_prompts_are_padded_to_its_length_and_read_without_a_mask(tiny_siglip_dir):
    from segp_hf.data.scenario import tokenize_prompts

    model = build_lora_clip(tiny_siglip_dir, r=4)
    siglip = clip_of(model)
    tokens = tokenize_prompts(family_of(model).tokenizer(tiny_siglip_dir, siglip.config), ["a red square", "a cross"])
    assert tokens["input_ids"].shape == (2, 12) and int(tokens["attention_mask"][1].sum()) == 4
    with torch.no_grad():
        ours = encode_texts(model, **tokens)
        unmasked = F.normalize(siglip.text_model(input_ids=tokens["input_ids"]).pooler_output, dim=-1)
        masked = F.normalize(siglip.text_model(**tokens).pooler_output, dim=-1)
    torch.testing.assert_close(ours, unmasked)
    assert (ours - masked).abs().max() > 1e-4  # the mask would matter: it is not passed
    with pytest.raises(RecipeError, match="padded to 12 tokens"):
        encode_texts(model, tokens["input_ids"][:, :5])


# ------------------------------------------------------------------------------------ LoRA targets
def test_lora_targets_are_checked_against_the_models_own_layers(tiny_clip_dir):
    with pytest.raises(RecipeError) as error:
        build_lora_clip(tiny_clip_dir, r=4, target_modules=["qkv", "k_proj"])
    message = str(error.value)
    assert "\n" not in message and "['qkv']" in message and "fc1, fc2, k_proj, out_proj, q_proj, v_proj" in message


def test_siglip_lora_sits_in_the_encoder_blocks_of_both_towers_not_in_the_pooling_head(tiny_siglip_dir):
    model = build_lora_clip(tiny_siglip_dir, r=4, target_modules=["k_proj", "v_proj", "fc1", "fc2", "out_proj"])
    adapted = {n.split(".lora_B")[0] for n, _ in model.named_parameters() if "lora_B" in n}
    assert adapted and all(".encoder.layers." in n for n in adapted), sorted(n for n in adapted if "head" in n)
    assert {n.split("base_model.model.")[1].split(".")[0] for n in adapted} == {"text_model", "vision_model"}
    assert len(adapted) == 2 * 2 * 5  # two towers x two blocks x five layers


def test_why_the_pooling_head_gets_no_lora_its_out_proj_is_ignored_until_merged(tiny_siglip_dir):
    """The fact the decision rests on (families.py): nn.MultiheadAttention reads ``out_proj.weight`` itself, so a PEFT
    LoRA there changes nothing unmerged and the merged weights after a merge (peft 0.21, torch 2.13)."""
    from peft import LoraConfig, get_peft_model

    from segp_hf.modeling.student import load_clip, peft_wrapping

    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    siglip = load_clip(tiny_siglip_dir).eval()
    with torch.no_grad(), peft_wrapping():
        base = siglip.vision_model(pixel_values=pixels).pooler_output
        model = get_peft_model(siglip, LoraConfig(r=4, target_modules=["vision_model.head.attention.out_proj"]))
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
        unmerged = model.base_model.model.vision_model(pixel_values=pixels).pooler_output
        merged = model.merge_and_unload().vision_model(pixel_values=pixels).pooler_output
    torch.testing.assert_close(unmerged, base)  # B is random, yet nothing changed
    assert (merged - base).abs().max() > 1e-3


def test_lora_counts_per_family_match_the_paper_on_clip_b16(monkeypatch):
    """B-only r=32 on k/v/fc1/fc2: 3.44M on ViT-B/16 CLIP (the paper), 4.13M on SigLIP-B/16 (its 768-wide text
    tower; the pooling head without LoRA), from the published configs on the meta device."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import lora_counts

    clip = lora_counts.count(*lora_counts.CHECKPOINTS["openai/clip-vit-base-patch16"])
    siglip = lora_counts.count(*lora_counts.CHECKPOINTS["google/siglip-base-patch16-224"])
    assert clip["trainable"] == 3_440_640 and (clip["text_model"], clip["vision_model"]) == (1_376_256, 2_064_384)
    assert siglip["trainable"] == 4_128_768 and siglip["lora_layers"] == 96


# ------------------------------------------------------------------------------------ refused
def test_other_model_types_are_refused_in_one_line(tmp_path, capsys):
    from transformers import BertConfig, Siglip2Config

    from segp_hf.modeling.student import load_clip

    BertConfig().save_pretrained(tmp_path / "bert")
    Siglip2Config().save_pretrained(tmp_path / "siglip2")
    with pytest.raises(RecipeError, match="'siglip2' checkpoint .*fixed-resolution SigLIP 2"):
        load_clip(str(tmp_path / "siglip2"))
    assert cli.main(["train", "--model_name_or_path", str(tmp_path / "bert"), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "'bert' checkpoint" in err and "CLIPModel" in err and "SiglipModel" in err and "Traceback" not in err


def test_a_sentencepiece_tokenizer_without_sentencepiece_is_one_line(tiny_siglip_dir, tmp_path):
    import importlib.util
    import shutil

    from segp_hf.modeling.families import family_of_checkpoint

    if importlib.util.find_spec("sentencepiece") is not None:
        pytest.skip("sentencepiece is installed")
    folder = tmp_path / "siglip-v1-tokenizer"  # as google/siglip-*: a SiglipTokenizer (spiece.model), no fast one
    folder.mkdir()
    shutil.copy(Path(tiny_siglip_dir) / "config.json", folder)
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "SiglipTokenizer"}')
    (folder / "spiece.model").write_bytes(b"not read")
    family = family_of_checkpoint(str(folder))
    with pytest.raises(RecipeError, match=r"pip install 'segp_hf\[siglip\]'"):
        family.tokenizer(str(folder), None)


def test_openai_preprocessing_is_refused_for_siglip(tiny_siglip_dir, tiny_clip_dir):
    from segp_hf.modeling.preprocessing import OpenAICLIPTransform, build_image_processor

    assert isinstance(build_image_processor(tiny_clip_dir, mode="openai"), OpenAICLIPTransform)
    with pytest.raises(RecipeError, match="image_preprocessing=openai .* use image_preprocessing=hf"):
        build_image_processor(tiny_siglip_dir, mode="openai")
    assert type(build_image_processor(tiny_siglip_dir)).__name__ == "SiglipImageProcessorPil"
