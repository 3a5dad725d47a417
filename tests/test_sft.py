"""The SFT stage: response-only loss (hand-checked, both padding sides, both architectures), a learning run, the export
that PPO starts from, errors for bad input, and the tiny assets' SFT warm start."""

import copy
import json
import math
import random
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig
from alarm_pl.data.prompts import DataFormatError, PromptDataModule, TinyMTDataModule
from alarm_pl.data.sft_batch import IGNORE_INDEX, causal_batch, seq2seq_batch
from alarm_pl.optim import WarmupCosineLR
from alarm_pl.sft import SFTModule, response_nll

CONFIGS = Path(__file__).parents[1] / "configs"

EOS, PAD = 2, 0
PROMPTS = [[11, 12, 13], [21]]  # mixed prompt lengths
TARGETS = [[31, 32, EOS], [41, EOS]]  # targets end with EOS


def _trainer(**kwargs):
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def _module(name, **kwargs):
    module = SFTModule(
        policy=PolicyConfig(
            model_name_or_path=name,
            lora_r=kwargs.pop("lora_r", 0),
            lora_target_modules=kwargs.pop("lora_target_modules", None),
        ),
        generation=GenerationConfig(max_new_tokens=24),
        max_prompt_length=64,
        **kwargs,
    )
    module.policy.load()
    return module


def test_causal_labels_by_hand_right_and_left_padding():
    right = causal_batch(PROMPTS, TARGETS, PAD, "right")
    # row 0: 11 12 13 | 31 32 EOS — position j predicts token j+1; the prompt's last token (j=2) predicts 31
    # row 1: 21 | 41 EOS, then 3 pads — nothing is learned at prompt-only positions, the last token or padding
    assert right.input_ids.tolist() == [[11, 12, 13, 31, 32, EOS], [21, 41, EOS, PAD, PAD, PAD]]
    assert right.labels.tolist() == [[-100, -100, 31, 32, EOS, -100], [41, EOS, -100, -100, -100, -100]]
    assert right.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 2, 2, 2]]
    left = causal_batch(PROMPTS, TARGETS, PAD, "left")
    assert left.input_ids.tolist() == [[11, 12, 13, 31, 32, EOS], [PAD, PAD, PAD, 21, 41, EOS]]
    assert left.labels.tolist() == [[-100, -100, 31, 32, EOS, -100], [-100, -100, -100, 41, EOS, -100]]
    assert left.attention_mask.tolist() == [[1] * 6, [0, 0, 0, 1, 1, 1]]
    assert left.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 1, 2]]  # padding shifts no position
    assert left.num_target_tokens == right.num_target_tokens == 5  # 3 + 2 target tokens, EOS included


def test_response_nll_is_the_mean_over_target_tokens_only():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0] = torch.tensor([0.0, math.log(3.0), 0.0, 0.0])  # p(1) = 3/6 = 1/2
    logits[0, 1] = torch.tensor([100.0, 0.0, 0.0, 0.0])  # a prompt position: huge loss if it were counted
    logits[0, 2] = torch.tensor([0.0, 0.0, 0.0, math.log(5.0)])  # p(3) = 5/8
    labels = torch.tensor([[1, IGNORE_INDEX, 3]])
    expected = (math.log(2.0) + math.log(8 / 5)) / 2
    assert float(response_nll(logits, labels)) == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def causal():
    torch.manual_seed(0)
    return _module("tiny:mt-causal")


def _nll_of_single_example(model, prompt, target):
    """Σ −log p(target_t | prompt, target_<t) of one unpadded example, by hand."""
    ids = torch.tensor([prompt + target])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return -sum(float(logprobs[len(prompt) - 1 + t, tok]) for t, tok in enumerate(target))


@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_loss_equals_the_per_example_sum_over_response_tokens(causal, side):
    """Mixed prompt lengths, padding on either side: the batched loss is exactly the mean over the 5 target tokens
    of each example's own unpadded log-likelihood (prompt tokens and padding contribute nothing)."""
    model = causal.policy.model.eval()
    prompts = [[5, 17, 40, 9], [23, 8]]
    targets = [[101, 55, EOS], [77, 13, 42, EOS]]
    batch = causal_batch(prompts, targets, causal.policy.tokenizer.pad_token_id, side)
    with torch.no_grad():
        loss = response_nll(
            model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
            ).logits,
            batch.labels,
        )
        expected = sum(_nll_of_single_example(model, p, t) for p, t in zip(prompts, targets)) / 7
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_causal_text_batch_labels_the_reference_and_eos(causal):
    tok = causal.policy.tokenizer
    prompts = ["translate Spanish to English: El perro come pan.", "translate Spanish to English: ¿Dónde?"]
    refs = ["The dog eats bread.", "Where?"]
    batch = causal.make_batch(prompts, refs)
    for i, ref in enumerate(refs):
        labelled = batch.labels[i][batch.labels[i] != IGNORE_INDEX].tolist()
        assert labelled == tok(ref, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.padding_side == "left" and batch.attention_mask[1, 0] == 0  # the policy's own (left) padding


@pytest.fixture(scope="module")
def seq2seq():
    torch.manual_seed(0)
    return _module("tiny:mt-seq2seq")


def test_seq2seq_labels_pad_to_minus_100_and_decoder_inputs_shift_right():
    batch = seq2seq_batch(PROMPTS, TARGETS, PAD, decoder_start_id=PAD)
    assert batch.input_ids.tolist() == [[11, 12, 13], [21, PAD, PAD]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.labels.tolist() == [[31, 32, EOS], [41, EOS, -100]]
    assert batch.decoder_input_ids.tolist() == [[PAD, 31, 32], [PAD, 41, EOS]]


def test_seq2seq_loss_matches_transformers_own_label_loss(seq2seq):
    """Our decoder inputs and masking agree with T5's built-in shift and -100 handling; targets end with EOS and
    are cut to max_target_length with the EOS kept."""
    tok = seq2seq.policy.tokenizer
    prompts = [
        "translate Spanish to English: El perro come pan en el parque cada día.",
        "translate Spanish to English: Hola.",
    ]
    refs = ["The dog eats bread in the park every day.", "Hi."]
    batch = seq2seq.make_batch(prompts, refs)
    assert batch.labels[1].tolist().count(IGNORE_INDEX) > 0 and PAD not in batch.labels.tolist()[0]
    assert [row[row != IGNORE_INDEX][-1] for row in batch.labels] == [tok.eos_token_id] * 2
    model = seq2seq.policy.model.eval()
    with torch.no_grad():
        ours = response_nll(seq2seq.logits(batch), batch.labels)
        theirs = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    seq2seq.max_target_length = 4
    try:
        cut = seq2seq.make_batch(prompts[:1], refs[:1])
    finally:
        seq2seq.max_target_length = 128
    assert cut.labels.tolist()[0] == tok(refs[0], add_special_tokens=False)["input_ids"][:3] + [tok.eos_token_id]


def test_warmup_cosine_schedule_by_hand():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, warmup_ratio=0.2)
    sched.set_total_steps(10)  # ceil(0.2·10) = 2 warm-up steps, then a half cosine over the remaining 8
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.0, 0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)]
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert lrs[6] == pytest.approx(0.5) and lrs[10] == pytest.approx(0.0)


def _val_metric(trainer, module, data, key):
    return float(trainer.validate(module, data, verbose=False)[0][key])


def test_sft_learns_the_tiny_task(tmp_path):
    """From a freshly initialised policy: training loss falls and greedy validation chrF rises."""
    pl.seed_everything(0)
    module = SFTModule(
        policy=PolicyConfig(model_name_or_path="tiny:mt-seq2seq-init", lora_r=0),
        generation=GenerationConfig(max_new_tokens=20),
        max_prompt_length=64,
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
        lr_scheduler=lambda opt: WarmupCosineLR(opt, warmup_ratio=0.1),
        generations_dir=str(tmp_path / "gen"),
    )
    data = TinyMTDataModule(num_train=1280, num_val=16, batch_size=32)
    losses = []

    class Losses(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # dropout on, after validation too
            assert all(m.training for m in pl_module.policy.model.modules()), "SFT must train in train mode"

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = _trainer(max_steps=40, max_epochs=-1, val_check_interval=20, callbacks=[Losses()], gradient_clip_val=1.0)
    before = _val_metric(trainer, module, data, "val/chrf")
    trainer.fit(module, data)
    after = _val_metric(trainer, module, data, "val/chrf")
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses  # measured: 6.76 → 3.65 (ln 1000 = 6.9 at init)
    assert after > before + 10, (before, after)  # measured: 0.3 → 15.4 (the tiny task v2 is harder to learn)
    assert module.lr_schedulers().total_steps == 40  # filled in from the trainer
    records = [json.loads(line) for line in open(module.eval_collector.last_path)]  # PPO's generation-file format
    assert len(records) == 16 and len({r["prompt"] for r in records}) == 16
    assert all(r["reference"] and 0 <= r["holistic"] <= 100 for r in records)  # holistic: sentence chrF by default


def test_missing_reference_is_an_error_naming_file_and_line(tmp_path):
    lines = [
        {"prompt": "translate Spanish to English: Hola.", "reference": "Hello."},
        {"prompt": "translate Spanish to English: Adiós."},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    module = SFTModule(policy=PolicyConfig(model_name_or_path="tiny:mt-seq2seq", lora_r=0))
    data = PromptDataModule(train_file=str(path), val_file=str(path), batch_size=2)
    with pytest.raises(DataFormatError, match=r"train\.jsonl:2 \(train split, example 1\): no 'reference'"):
        _trainer(max_steps=1).fit(module, data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal of QLoRA")
def test_qlora_without_cuda_fails_with_the_clear_error():
    module = SFTModule(policy=PolicyConfig(model_name_or_path="tiny:mt-causal", lora_r=4, quantization_bits=4))
    with pytest.raises(RuntimeError, match="4-bit quantization was requested but CUDA is not available"):
        module.policy.load()


@pytest.mark.parametrize("targets", [None, ["c_attn", "lm_head"]])
def test_lora_sft_export_is_the_merged_model(tmp_path, causal, targets):
    """LoRA SFT exports one plain transformers model that computes what the adapted policy computes, also when the
    adapter is on an output layer tied to the input embedding (GPT-2: merging into the shared weight changed the
    inputs' embedding too, logits off by up to 6)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    module = _module("tiny:mt-causal", lora_r=4, lora_target_modules=targets)
    with torch.no_grad():
        for name, p in module.policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # a trained-looking adapter
    module.export(str(tmp_path / "out"))
    module.export(str(tmp_path / "out"))  # replacing an earlier export works
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    assert not any("lora" in n for n, _ in exported.named_parameters())
    ids = torch.tensor([[5, 17, 40, 9, 23]])  # merged float32 weights round differently: ~1e-5 apart
    with torch.no_grad():
        want = module.policy.model.eval()(input_ids=ids).logits
        torch.testing.assert_close(exported(input_ids=ids).logits, want, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(causal.policy.model(input_ids=ids).logits, want, atol=1e-3)  # the adapter counted

    from alarm_pl.models.surgery import merge_adapter_into_base  # the QLoRA export path, run unquantized here

    module.policy.model.save_pretrained(str(tmp_path / "adapter"))
    remerged = merge_adapter_into_base(module.policy._auto_class(), module.policy.config, str(tmp_path / "adapter"))
    with torch.no_grad():
        torch.testing.assert_close(remerged(input_ids=ids).logits, want, atol=1e-4, rtol=1e-4)


class StartingWeights(pl.Callback):
    """The PPO policy's weights (adapter merged) when training starts."""

    def on_train_start(self, trainer, pl_module):
        model = pl_module.policy.model
        self.state = {k: v.clone() for k, v in copy.deepcopy(model).merge_and_unload().state_dict().items()}


def test_sft_then_ppo_starts_from_the_exported_weights(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from alarm_pl.cli import cli_main

    export = tmp_path / "export"
    sft = cli_main(
        [
            "fit",
            "--config",
            str(CONFIGS / "tiny_sft.yaml"),
            "--trainer.max_steps",
            "4",
            "--trainer.val_check_interval",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path / "sft"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "sft"),
            "--data.init_args.num_train",
            "128",
            "--data.init_args.num_val",
            "4",
            "--export_dir",
            str(export),
        ]
    )
    exported = AutoModelForSeq2SeqLM.from_pretrained(str(export)).state_dict()
    trained = sft.model.policy.model.state_dict()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)  # the export is the trained model
    start = AutoModelForSeq2SeqLM.from_pretrained(str(_tiny("mt-seq2seq-init"))).state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in trained)  # and SFT changed it

    ppo = cli_main(
        [
            "--config",
            str(CONFIGS / "tiny_mt.yaml"),
            "--model.policy.model_name_or_path",
            str(export),
            "--trainer.max_steps",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path / "ppo"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "ppo"),
            "--data.init_args.batch_size",
            "4",
            "--data.init_args.num_val",
            "4",
            "--model.generation.max_new_tokens",
            "8",
            "--model.selection.warmup_rollouts",
            "1",
            "--model.selection.min_pairs",
            "1",
        ],
        run=False,
    )
    probe = StartingWeights()
    ppo.trainer.callbacks.append(probe)
    ppo.trainer.fit(ppo.model, datamodule=ppo.datamodule)
    assert ppo.trainer.global_step == 2
    assert set(probe.state) == set(exported)
    assert all(torch.equal(probe.state[k], exported[k]) for k in exported), "PPO did not start from the SFT export"


def _tiny(name):
    from alarm_pl.assets.tiny import ensure_tiny_asset

    return ensure_tiny_asset(name)


def test_asset_warm_start_is_deterministic_and_leaves_the_callers_rng_alone(tmp_path):
    from safetensors.torch import load_file

    from alarm_pl.assets.tiny import TinySpec, build_tiny_asset

    spec = TinySpec(
        "causal", "byte_bpe", 300, 32, 1, 2, sft_steps=3, sft_batch_size=8, sft_data_args={"num_train": 24, "seed": 5}
    )
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    before = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    for out in ("a", "b"):
        (tmp_path / out).mkdir()
        build_tiny_asset(spec, tmp_path / out)
    assert (torch.rand(3).tolist(), random.random(), np.random.rand()) == (before[0].tolist(), *before[1:])
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_length_grouped_batches_cover_every_example_once_with_less_padding():
    from torch.utils.data import RandomSampler

    from alarm_pl.data.sampling import LengthGroupedBatchSampler

    torch.manual_seed(0)
    lengths = [int(x) for x in torch.randint(1, 100, (230,))]
    sampler = LengthGroupedBatchSampler(
        RandomSampler(range(230)), batch_size=8, drop_last=False, lengths=lengths, group_size=10
    )
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(230)) and len(batches) == len(sampler) == 29
    assert [len(b) for b in batches].count(8) == 28  # only the very last batch of the epoch is short

    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    shuffled = torch.randperm(230).tolist()
    assert padding(batches) < 0.3 * padding([shuffled[i : i + 8] for i in range(0, 230, 8)])
    dropped = list(LengthGroupedBatchSampler(RandomSampler(range(230)), 8, drop_last=True, lengths=lengths))
    assert len(dropped) == 28 and all(len(b) == 8 for b in dropped)

    data = TinyMTDataModule(num_train=64, batch_size=8, group_by_length=True)
    loader = data.train_dataloader()
    assert isinstance(loader.batch_sampler, LengthGroupedBatchSampler)
    assert sorted(i for batch in loader for i in batch.indices) == list(range(64))
