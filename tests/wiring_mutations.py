"""Break one wiring decision at a time, run the tests meant to catch it, and report CAUGHT or MISSED.

    python tests/wiring_mutations.py [name-fragment ...]

Each mutation is a one-line source edit (restored afterwards, also on Ctrl-C). Every one must be CAUGHT;
a MISSED line means a test that cannot fail. Not collected by pytest (it takes minutes)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTATIONS = [
    ("trainer parallel check removed", "segp_hf/trainer.py", "        check_trainer_parallelism(self)\n", "", "test_parallel_modes.py"),
    ("runner parallel check removed", "segp_hf/run/continual.py", "        check_parallel_mode(config)  # before", "        pass  # before", "test_parallel_modes.py"),
    ("global batch ignored", "segp_hf/recipe.py", "    apply_global_batch(config)\n", "", "test_parallel_modes.py"),
    ("bf16 prediction head", "segp_hf/method/prototypes.py", "with float32_heads(raw_feats.device):\n        if not beta", "if True:\n        if not beta", "bf16"),
    ("bf16 loss head", "segp_hf/trainer.py", "with float32_heads(pixel_values.device):\n            loss, terms", "if True:\n            loss, terms", "bf16"),
    ("towers not cast to float32", "segp_hf/modeling/families.py", "projected = model.visual_projection(pooled).float()", "projected = model.visual_projection(pooled)", "float32_under"),
    ("acgd weight ignored", "segp_hf/trainer.py", "loss = loss + args.lambda_acgd * acgd", "loss = loss + acgd", "test_returned_loss"),
    ("tsgr weight ignored", "segp_hf/trainer.py", "loss = loss + args.lambda_tsgr * tsgr", "loss = loss + tsgr", "test_returned_loss"),
    ("acgd text detached", "segp_hf/trainer.py", "student = state.logit_scale * anchor_embeds @ old_text.T", "student = state.logit_scale * anchor_embeds @ old_text.detach().T", "test_acgd_gradient"),
    ("same anchors each step", "segp_hf/trainer.py", "* 1_000_003 + step) * 1_024", "* 1_000_003 + 0) * 1_024", "anchor"),
    ("dpgd prototype term dropped", "segp_hf/method/anchors.py", "lambda_visual=args.dpgd_lambda_visual if use_visual else 0.0", "lambda_visual=0.0", "dpgd_visual_term_changes"),
    ("ce over seen by default", "segp_hf/config.py", 'cls_classes: str = field(default="current"', 'cls_classes: str = field(default="seen"', "test_ce_runs or test_returned_loss"),
    ("ce current branch uses seen", "segp_hf/trainer.py", "loss_cls = F.cross_entropy(logits[:, start:end], labels - start)", "loss_cls = F.cross_entropy(logits, labels)", "test_ce_runs or test_returned_loss"),
    ("no drift transfer", "segp_hf/method/prototypes.py", "    if start > 0 and task_state.anchors is not None and task_state.prototypes is not None:\n", "    if False:\n", "drift_transfer"),
    ("onlyclip scores with prototypes", "segp_hf/method/prototypes.py", "return float(beta) if switches.beta_enabled else 0.0", "return float(beta)", "test_evaluation.py"),
    ("scorer casts prototypes down", "segp_hf/method/prototypes.py", "prototypes.to(raw_feats.device), logit_scale, beta)", "prototypes.to(raw_feats), logit_scale, beta)", "test_evaluation.py"),
    ("future task scored over seen only", "segp_hf/evaluation/rounds.py", "return seen if other <= task else", "return seen if True else", "test_evaluation.py"),
    ("til round dropped", "segp_hf/evaluation/rounds.py", "        if other <= task and task_incremental:\n            classes", "        if False:\n            classes", "test_continual.py"),
    ("lora_A not re-frozen", "segp_hf/modeling/student.py", "            parameter.requires_grad_(trainable[name])", "            pass", "lora_A_and_base or trainable_set"),
    ("adapter toggle forces B only", "segp_hf/modeling/student.py", "        for name, parameter in peft_model.named_parameters():\n            parameter.requires_grad_(trainable[name])", "        train_only_lora_B(peft_model)", "trainable_set"),
    ("momentum off", "segp_hf/config.py", 'default="momentum=0.9"', 'default="momentum=0.0"', "sgd_momentum"),
    ("linear schedule", "segp_hf/config.py", 'lr_scheduler_type: str = field(default="cosine"', 'lr_scheduler_type: str = field(default="linear"', "sgd_momentum"),
    ("clipping at 1.0", "segp_hf/config.py", "        default=0.0,\n        metadata={\"help\": \"Gradient clipping", "        default=1.0,\n        metadata={\"help\": \"Gradient clipping", "clipping"),
    ("q_proj targets", "segp_hf/modeling/student.py", 'target_modules=list(target_modules),', 'target_modules=list(target_modules) + ["q_proj"],', "3_44m"),
    ('rapf lora left trainable', 'segp_hf/variants/rapf/trainer.py', '            parameter.requires_grad_(False)', '            parameter.requires_grad_(parameter.requires_grad)', 'test_competitor_wiring.py::only_W'),
    ('rapf replay not in the CE', 'segp_hf/variants/rapf/trainer.py', 'feats, labels = torch.cat([feats, replay.to(feats)]), torch.cat([labels, replay_labels.to(labels)])', 'feats, labels = feats, labels', 'test_competitor_wiring.py::ce_over_real'),
    ('rapf hinge dropped', 'segp_hf/variants/rapf/trainer.py', 'loss = rapf.rapf_loss(logits, labels, hinge)', 'loss = rapf.rapf_loss(logits, labels, None)', 'test_competitor_wiring.py::ce_over_real'),
    ('rapf replay count', 'segp_hf/variants/rapf/trainer.py', 'vs.replayed(classes, int(10 * args.rapf_beta)', 'vs.replayed(classes, int(5 * args.rapf_beta)', 'test_competitor_wiring.py::ce_over_real'),
    ('rapf no fusion', 'segp_hf/variants/rapf/state.py', '        if start > 0:\n            self.adapter.copy_(', '        if False:\n            self.adapter.copy_(', 'test_competitor_wiring.py::fuses_W'),
    ('rapf fusion after task 1', 'segp_hf/variants/rapf/state.py', '        if start > 0:\n            self.adapter.copy_(rapf.fuse_adapter(self.adapter.detach(), self.adapter_old', '        if True:\n            self.adapter.copy_(rapf.fuse_adapter(self.adapter.detach(), 0 * self.adapter_old', 'test_competitor_wiring.py::not_fuse'),
    ('rapf old stats dropped', 'segp_hf/variants/rapf/state.py', 'self.means = means if self.means is None else torch.cat([self.means[keep].to(means), means])', 'self.means = means', 'test_competitor_wiring.py::gaussians'),
    ('rapf W grad accumulates', 'segp_hf/variants/rapf/trainer.py', '    def on_optimizer_step(self, args, state, control, **kwargs):\n        self.variant_state.adapter.grad = None', '    def on_optimizer_step(self, args, state, control, **kwargs):\n        pass', 'test_competitors.py::kill_inside and rapf'),
    ('rapf W not in trainer checkpoint', 'segp_hf/variants/rapf/trainer.py', '            self.variant_state.save(folder, within_task=True)', '            pass', 'test_competitors.py::kill_inside and rapf'),
    ('rapf scorer without W', 'segp_hf/variants/rapf/state.py', 'rapf.adapter_logits(feats, self.adapter.detach().to(feats.device)', 'rapf.adapter_logits(feats, torch.eye(feats.shape[1])', 'test_competitor_wiring.py::R1'),
    ('mgclip A frozen', 'segp_hf/variants/mg_clip/config.py', '"lora_trainable": "AB"', '"lora_trainable": "B"', 'test_competitor_wiring.py::r8_alpha1'),
    ('mgclip alpha = r', 'segp_hf/variants/mg_clip/config.py', '"lora_alpha": 1.0', '"lora_alpha": 8.0', 'test_competitor_wiring.py::r8_alpha1'),
    ('mgclip q_proj too', 'segp_hf/variants/mg_clip/config.py', '"lora_target_modules": ["k_proj", "v_proj"]', '"lora_target_modules": ["q_proj", "k_proj", "v_proj"]', 'test_competitor_wiring.py::r8_alpha1'),
    ('mgclip kaiming A', 'segp_hf/variants/mg_clip/config.py', '"lora_init_A": "xavier"', '"lora_init_A": "kaiming"', 'test_competitor_wiring.py::r8_alpha1'),
    ('mgclip CE over seen', 'segp_hf/variants/mg_clip/config.py', '"lora_init_A": "xavier", "cls_classes": "current"', '"lora_init_A": "xavier", "cls_classes": "seen"', 'test_competitor_wiring.py::current_task'),
    ('mgclip rows not at means', 'segp_hf/variants/mg_clip/state.py', 'new = torch.nn.Parameter(mg_clip.class_mean_weights(feats, labels))', 'new = torch.nn.Parameter(0.5 * mg_clip.class_mean_weights(feats, labels))', 'test_competitor_wiring.py::agent_rows'),
    ('mgclip agent never trains', 'segp_hf/variants/mg_clip/state.py', '                    optimizer.step()', '                    pass', 'test_competitor_wiring.py::agent_rows'),
    ('mgclip weights swapped', 'segp_hf/variants/mg_clip/state.py', 'combined_log_probs(clip_logits, agent, settings.mgclip_clip_weight,\n                                              settings.mgclip_agent_weight,', 'combined_log_probs(clip_logits, agent, settings.mgclip_agent_weight,\n                                              settings.mgclip_clip_weight,', 'test_competitor_wiring.py::mixture'),
    ('mgclip clip softmax once', 'segp_hf/variants/mg_clip/state.py', 'settings.mgclip_agent_weight, settings.mgclip_clip_softmax)', 'settings.mgclip_agent_weight, "once")', 'test_competitor_wiring.py::mixture'),
    ('mgclip single softmax by default', 'segp_hf/variants/mg_clip/math.py', '    if clip_softmax == "twice":\n        clip = torch.softmax(clip, dim=-1)', '    pass', 'test_variants_math.py::softmax_twice'),
    ('mgclip agent on future tasks', 'segp_hf/variants/mg_clip/state.py', '            if self.rows is None or int(classes.max()) >= self.rows.shape[0]:', '            if self.rows is None:', 'test_competitor_wiring.py::mixture'),
    ('mgclip probe result ignored', 'segp_hf/variants/mg_clip/trainer.py', '            self.args.num_train_epochs = variant_state.epochs', '            pass', 'test_competitor_wiring.py::auto_epochs'),
    ('per-epoch lr ignored', 'segp_hf/variants/schedules.py', 'if self.args.epoch_lr_schedule == "none":', 'if True:', 'test_competitor_wiring.py::per_epoch'),
    ("real_size gradient norms not recorded", "benchmarks/real_size.py", "        trainer.add_callback(RecordNorms(task))\n", "", "test_real_size.py::tiny_mode"),
    ("real_size text gradient not checked", "benchmarks/real_size.py", 'for tower in ("text", "vision"):', 'for tower in ("vision",):', "test_real_size.py::gradient_check"),
    ("paper_scale epochs not timed", "benchmarks/paper_scale.py", "        trainer.add_callback(TimeEpochs(task))\n", "", "test_gpu_check.py::tiny_mode"),
    ("paper_scale extrapolates from epoch 1", "benchmarks/paper_scale.py", "statistics.mean(epochs[1:]) if len(epochs) > 1", "statistics.mean(epochs[:1]) if len(epochs) > 1", "test_gpu_check.py::extrapolates"),
    ("label_space vision without the anchors", "benchmarks/label_space.py", "images = torch.cat([pixels, state.anchors.pixel_values[:ANCHOR_BATCH]])", "images = pixels", "test_label_space.py::tiny"),
    ("preflight ignores versions", "benchmarks/wheel_preflight.py", "if requirement.specifier and not requirement.specifier.contains(have, prereleases=True):", "if False:", "test_offline_gpu_check.py"),
    ("real_size run with the old tokenizer end token", "benchmarks/gpu_check.py", "ids.pad_token_id, ids.bos_token_id, ids.eos_token_id = 0, 2, 3", "ids.pad_token_id, ids.bos_token_id, ids.eos_token_id = 0, 2, 49407", "test_real_size.py::tiny_mode"),
    ('explicit keys lose to defaults', 'segp_hf/recipe.py', 'return {key: value for key, value in defaults.items() if key not in explicit}', 'return dict(defaults)', 'test_competitors.py::published'),
    ('published defaults never applied', 'segp_hf/recipe.py', 'argv = _recipe_to_argv(recipe) + _recipe_to_argv(_competitor_defaults(recipe, overrides)) + overrides', 'argv = _recipe_to_argv(recipe) + overrides', 'test_competitors.py::published'),
    ('load_task ignores the competitor scorer', 'segp_hf/hub/inference.py', 'self.task_state, self.settings, self.variant_state)', 'self.task_state, self.settings, None)', 'test_competitors.py::load_task'),
    ('competitor state not saved', 'segp_hf/run/checkpoints.py', '            variant_state.save(staging)', '            pass', 'test_competitors.py::load_task'),
    ('competitor state not restored', 'segp_hf/run/continual.py', '            self.variant.state.restore(last)', '            pass', 'test_competitors.py::resume_after'),
    ('rapf retention through the frozen CLIP', 'segp_hf/variants/rapf/state.py', '    scores_held_out = True', '    scores_held_out = False', 'test_competitors.py::retention'),
    ('rapf allowed on several processes', 'segp_hf/run/distributed.py', 'if getattr(config, "variant", None) == "rapf" and config.world_size > 1:', 'if False:', 'test_parallel_modes.py'),
    ('eval command ignores the competitor rule', 'segp_hf/commands/eval_task.py', ', variant_state=loaded.variant_state)', ')', 'test_competitors.py::eval_command'),
    ('scorer ignores a competitor state', 'segp_hf/method/prototypes.py', '    if variant_state is not None:\n        return variant_state.score', '    if False:\n        return variant_state.score', 'test_competitor_wiring.py::mixture or R1'),
    ('eval_mode never restores training', 'segp_hf/modeling/student.py', '    finally:\n        model.train(was_training)', '    finally:\n        pass', 'eval_mode'),
    ('recipe name never looked up', 'segp_hf/recipe.py', '    path = find_recipe(str(path))\n', '', 'test_recipes_by_name.py'),
    ('a shipped recipe beats a real file', 'segp_hf/recipe.py', 'if Path(value).expanduser().exists() or Path(value).name != value:', 'if Path(value).name != value:', 'test_recipes_by_name.py::real_file'),
    ('config rule refuses a recipe name', 'segp_hf/validation.py', '    if not path.exists() and path.name == str(value):\n        return None\n', '', 'test_recipes_by_name.py::installed_wheel'),
    ('custom prompts keep underscores', 'segp_hf/data/custom.py', 'class_names=[name.replace("_", " ") for name in names]', 'class_names=list(names)', 'test_custom_benchmark.py::own_schema or found_columns'),
    ('custom never tests on validation', 'segp_hf/data/custom.py', 'TEST_SPLITS = ("test", "validation")', 'TEST_SPLITS = ("test",)', 'test_custom_benchmark.py::found_columns'),
    ('custom hold-out leaks into train', 'segp_hf/data/custom.py', '        train.append(rows[held:])', '        train.append(rows)', 'test_custom_benchmark.py::holdout'),
    ('custom uneven tasks allowed', 'segp_hf/data/custom.py', '    check_divisible(len(names), data_args.num_tasks)\n', '', 'test_custom_benchmark.py::mistakes'),
    ('custom without a data source', 'segp_hf/validation.py', '    if len(given) != 1:\n        return "benchmark custom', '    if False:\n        return "benchmark custom', 'test_custom_benchmark.py::mistakes'),
    ('custom tests on its train split', 'segp_hf/validation.py', 'if data_args.test_split is not None and data_args.test_split == train:', 'if False:', 'test_custom_benchmark.py::mistakes'),
    ('parquet folder not read', 'segp_hf/data/fetching.py', 'if next(root.rglob("*.parquet"), None) is not None:', 'if False:', 'test_custom_benchmark.py::parquet'),
    ('competitor end of task skipped', 'segp_hf/variants/base.py', '            self.variant_state.end_task(model, self.state, args)', '            pass', 'test_competitors.py::load_task_predicts'),
    ("stop callback not installed", "segp_hf/run/continual.py", "callbacks=[StopCallback(self.stop, task), ", "callbacks=[", "test_preemption.py"),
    ("stop signals not caught", "segp_hf/run/continual.py", "            with stop_requests() as self.stop:\n                return self.run_tasks()", "            return self.run_tasks()", "test_preemption.py"),
    ("stop without an in-task checkpoint", "segp_hf/run/preemption.py", "            control.should_save = True  # a checkpoint", "            pass  # a checkpoint", "test_preemption.py"),
    ("output dir not locked", "segp_hf/run/continual.py", "    with output_dir_lock(config):\n        return", "    if True:\n        return", "test_run_lock.py"),
    ("stale lock never taken over", "segp_hf/run/lock.py", "        if holder and holder_alive(holder, _age(path)):", "        if holder:", "test_run_lock.py"),
    ("every rank locks", "segp_hf/run/lock.py", 'if getattr(config, "process_index", 0) != 0:', 'if False:', "test_run_lock.py"),
    ("second signal only noted", "segp_hf/run/preemption.py", "        if self.signum is not None:\n            raise RunStopped", "        if False:\n            raise RunStopped", "test_preemption.py::second_signal"),
    ("failed task write not named", "segp_hf/run/checkpoints.py", '            raise write_failure(final.parent, error, f"task-{task}") from None', "            raise", "test_full_disk.py"),
    ("staging left after a failed write", "segp_hf/run/checkpoints.py", "        shutil.rmtree(staging, ignore_errors=True)  # the task's older copy", "        pass  # the task's older copy", "test_full_disk.py"),
    ("failed write exits 2", "segp_hf/cli.py", "        return 5\n", "        return 2\n", "test_full_disk.py"),
    ("push record ignored", "segp_hf/hub/push.py", "        if record.holds(branch, task, print_):", "        if False:", "test_hub.py::drops_halfway"),
    ("main moved back to an earlier task", "segp_hf/hub/push.py", ' or record.main_is_past(task):', ':', "test_hub.py::drops_halfway"),
    ("branch upload not recorded", "segp_hf/hub/push.py", "            record.mark(branch, task, print_)\n", "", "test_hub.py::drops_halfway"),
    ("resumed run does not queue unpushed tasks", "segp_hf/hub/push.py", "if not record.has_branch(branch_name(task))]", "if False]", "test_hub.py::queues_its_tasks"),
    ("no lock heartbeat", "segp_hf/run/lock.py", "            os.utime(path)\n", "            pass\n", "test_run_lock.py"),
    ('http status not read', 'segp_hf/data/hub_errors.py', '    if status in (401, 403):\n', '    if False:\n', 'test_hub_data.py::gated_is_read'),
    ('hub error classes not read', 'segp_hf/data/hub_errors.py', '    for name, kind in _HUB_CLASSES:\n        if name in names:', '    for name, kind in ():\n        if name in names:', 'test_hub_data.py::missing_revision_is_read or gated_is_read'),
    ('own revision worded as the pin', 'segp_hf/data/hub_sources.py', 'pinned = revision is not None and revision == source.revision', 'pinned = True', 'test_hub_data.py::worded_as_theirs'),
    ('none does not empty a list', 'segp_hf/config.py', '        empty_lists(self)\n', '', 'test_hub_data.py::emptied'),
    ('dry run prints the pin', 'segp_hf/commands/plan.py', 'source, revision = hub_target(SOURCES[data_args.benchmark], data_args)', 'source, revision = SOURCES[data_args.benchmark], data_args.dataset_revision or estimate.revision', 'test_hub_data.py::dry_run'),
    ('missing task over 401 reads as no repo', 'segp_hf/hub/tasks.py', 'found = _hub_tasks(source, token) if task is not None else None', 'found = None', 'test_hub_data.py::401'),
    ('zero-shot revision not passed', 'segp_hf/evaluation/zero_shot.py', '                                          self.revisions.get(name))', '                                          None)', 'test_hub_data.py::own_revision'),
    ('zero-shot revisions unchecked', 'segp_hf/validation.py', 'e.g. food101=COMMIT,imagenet1k=COMMIT", zero_shot_revisions)', 'e.g. food101=COMMIT,imagenet1k=COMMIT", lambda value: None)', 'test_hub_data.py::rule_table'),
    ('zero-shot pin error names dataset_revision', 'segp_hf/data/zero_shot_sets.py', 'source = dataclasses.replace(SOURCES[name], revision_setting=f"{REVISIONS_SETTING} {name}=")', 'source = SOURCES[name]', 'test_hub_data.py::names_its_own'),
    ('stream read error raw', 'segp_hf/data/hub_sources.py', '    except Exception as error:  # noqa: BLE001 - reported in one line; a DataError', '    except DataError as error:  # noqa: BLE001 - reported in one line; a DataError', 'test_hub_data.py::read_error'),
    ('build folder left behind', 'segp_hf/data/hub_sources.py', '        shutil.rmtree(build, ignore_errors=True)  # the rows are kept once', '        pass  # the rows are kept once', 'test_hub_data.py::read_error'),
    ('rows keyed by the revision name', 'segp_hf/data/hub_sources.py', '    revision = commit or resolve_commit(source, revision) or revision', '    revision = revision', 'test_hub_data.py::per_resolved_commit'),
    ('offline commit pointer ignored', 'segp_hf/data/hub_sources.py', '    return ref.read_text().strip() if ref.is_file() else None', '    return None', 'test_hub_data.py::per_resolved_commit'),
    ('load_task ignores the task in the reference', 'segp_hf/hub/inference.py', '    repo_id_or_path, task = _source_and_task(repo_id_or_path, task)\n', '    repo_id_or_path = str(repo_id_or_path)\n', 'test_hub_tasks_over_http.py::command_lines_task_reference'),
    ('card dataset not the benchmark source', 'segp_hf/hub/model_card.py', 'source = None if own or config.get("data_dir") else SOURCES.get(config.get("benchmark"))', 'source = None', 'test_hub.py::metadata_the_hub_renders'),
    ('zero-shot accuracy not on the card', 'segp_hf/hub/model_card.py', '_zero_shot_sources(config, saved.get("zero_shot_retention")).items()', '{}.items()', 'test_hub.py::metadata_the_hub_renders'),
    ('eval results files not written', 'segp_hf/hub/model_card.py', '    _write_eval_results(output_dir, task, repo_id)\n', '', 'test_hub.py::metadata_the_hub_renders'),
    ('dry run without the zero-shot revisions', 'segp_hf/commands/plan.py', 'for line in transfer_lines(data_args) + zero_shot_lines(data_args):', 'for line in transfer_lines(data_args):', 'test_hub_data_over_http.py::dry_run'),
    ('dry run prints the zero-shot pin', 'segp_hf/commands/plan.py', 'revision = revisions.get(name) or source.revision or', 'revision = source.revision or', 'test_hub_data.py::each_zero_shot_set'),
    ('base commit from the config hash', 'segp_hf/run/continual.py', 'model_commit(model_args.model_name_or_path, self.base_args.model_revision)', 'getattr(self.model.config, "_commit_hash", None)', 'test_hub_tasks_over_http.py::recorded_push'),
    ('base commit not read from the cache', 'segp_hf/hub/tasks.py', '    return config.parent.name if _COMMIT.fullmatch(config.parent.name) else None', '    return None', 'test_hub.py::base_commit_is_read'),
    ('resumed run loads the newest base', 'segp_hf/run/resume.py', '    return saved.get("base_model_commit") if', '    return None if', 'test_hub.py::base_commit_is_read'),
    ('resumed base revision not used', 'segp_hf/run/continual.py', '        args = self.base_args\n', '        args = self.model_args\n', 'test_hub_tasks_over_http.py::load_eval_and_resume'),
    ('dataset commit not recorded', 'segp_hf/run/continual.py', 'self.run_config["dataset_commit"] = self.scenario.provenance.get("commit")', 'self.run_config["dataset_commit"] = None', 'test_hub_data.py::recorded_in_the_saved'),
    ('ranks decode the whole split', 'segp_hf/data/ready_batches.py', '            mine = store.share(missing)\n', '            mine = np.ones(len(missing), dtype=bool)\n', 'test_pixel_cache.py::share_when'),
    ('shared store files left behind', 'segp_hf/data/ready_batches.py', '                store.release_name()  # every peer', '                pass  # every peer', 'test_pixel_cache.py::ranks_of_a_machine'),
    ('zero-shot set scored whole on every rank', 'segp_hf/evaluation/zero_shot.py', 'lo, hi = shard_bounds(len(held_out.dataset), self.rank, self.world)', 'lo, hi = 0, len(held_out.dataset)', 'test_distributed.py'),
    ('zero-shot counts not summed over ranks', 'segp_hf/evaluation/zero_shot.py', '        counts = sum_across_ranks(counts, device)\n', '', 'test_distributed.py'),
    ('zero-shot set decoded at each measurement', 'segp_hf/evaluation/zero_shot.py', '        if name not in self._shards:\n', '        if True:\n', 'test_pixel_cache.py::decodes_each_image'),
    ('zero-shot set not cached', 'segp_hf/evaluation/zero_shot.py', '            self._shards[name] = HeldOutShard(part, self._cached(part))', '            self._shards[name] = HeldOutShard(part, None)', 'test_pixel_cache.py::decodes_each_image'),
    ('ranks of other machines share a cache', 'segp_hf/run/distributed.py', 'same = [r for r, other in enumerate(hosts) if other == host]', 'same = list(range(world))', 'test_anchor_sharding.py'),
    ('cache session not agreed', 'segp_hf/run/distributed.py', '    torch.distributed.broadcast_object_list(session, src=0)\n', '', 'test_anchor_sharding.py'),
    ('siglip text tower detached', 'segp_hf/modeling/families.py', 'return model.text_model(input_ids=input_ids).pooler_output.float()', 'return model.text_model(input_ids=input_ids).pooler_output.float().detach()', 'test_model_families.py::loss_reaches_lora_B'),
    ('siglip bias folded into the scale', 'segp_hf/modeling/families.py', '        return float(scale)\n', '        return float(scale + model.logit_bias.detach())\n', 'test_model_families.py::logit_bias'),
    ('siglip raw feature not the head output', 'segp_hf/modeling/families.py', '        return embed, embed\n', '        return embed, model.vision_model(pixel_values=pixel_values).last_hidden_state[:, 0].float()\n', 'test_model_families.py::raw_feature'),
    ('siglip prompts padded to the longest', 'segp_hf/modeling/families.py', 'kwargs.update(padding="max_length", max_length=self.length, truncation=True)', 'kwargs.update(truncation=True)', 'test_model_families.py::padded_to_its_length'),
    ('siglip tokenizer not the family one', 'segp_hf/modeling/families.py', 'return tokenizer if length is None else FixedLengthTokenizer(tokenizer, length)', 'return tokenizer', 'test_model_families.py::two_shapes_tasks'),
    ('siglip text read with the mask', 'segp_hf/modeling/families.py', 'return model.text_model(input_ids=input_ids).pooler_output.float()', 'return model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output.float()', 'test_model_families.py::without_a_mask'),
    ('lora targets unchecked', 'segp_hf/modeling/families.py', 'missing = [target for target in requested if target not in candidates]', 'missing = []', 'test_model_families.py::checked_against'),
    ('siglip lora in the pooling head', 'segp_hf/modeling/families.py', 'in_block = any(name.startswith(f"{tower}.encoder.layers.") for tower in TOWERS)', 'in_block = any(name.startswith(f"{tower}.") for tower in TOWERS)', 'test_model_families.py::not_in_the_pooling_head'),
]
only = sys.argv[1:]
for name, path, old, new, tests in MUTATIONS:
    if only and not any(o in name for o in only):
        continue
    full = os.path.join(ROOT, path)
    text = open(full).read()
    assert old in text, (name, old)
    shutil.copy(full, full + ".bak")
    open(full, "w").write(text.replace(old, new, 1))
    try:
        # tests: "file.py" (the whole file), "file.py::k-expression", or a -k expression over test_wiring.py
        target, _, k = tests.partition("::") if "::" in tests else (("tests/" + tests, "", "") if tests.endswith(".py") else ("test_wiring.py", "", tests))
        target = target if target.startswith("tests/") else "tests/" + target
        r = subprocess.run([sys.executable, "-m", "pytest", target, "-q", "-x", "-p", "no:warnings", *(["-k", k] if k else [])],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
        print(f"{'CAUGHT' if r.returncode else 'MISSED'}  {name}: {last}", flush=True)
    finally:
        shutil.move(full + ".bak", full)
