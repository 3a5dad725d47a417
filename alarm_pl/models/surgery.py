"""Changes made to a loaded Hugging Face model, apart from the policy that makes them: dropout off for PPO, an output
layer untied from the input embedding before a LoRA merge, and the merge of a saved adapter into an unquantized base
(the QLoRA export path)."""

from __future__ import annotations

from torch import nn

from alarm_pl.config import PolicyConfig
from alarm_pl.models.loading import resolve_model_reference, torch_dtype_from_str


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability of ``model`` to 0, in training mode as well as in eval mode.

    Covers ``nn.Dropout`` modules (LoRA's included), the float attributes named ``*dropout*`` that attention and
    layer implementations pass to functional dropout (T5's ``dropout``, Llama's ``attention_dropout``, BART's
    ``activation_dropout``), and the same keys of every model config they may read at run time.
    """
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            for name, value in config.to_dict().items():
                if "dropout" in name and isinstance(value, float):
                    setattr(config, name, 0.0)


def merge_adapter_into_base(auto_class, config: PolicyConfig, adapter_dir: str) -> nn.Module:
    """The base model of ``config`` loaded unquantized (``config.dtype``, CPU) with the peft adapter in
    ``adapter_dir`` merged into its weights."""
    from peft import PeftModel

    path = resolve_model_reference(
        config.model_name_or_path, "model.policy.model_name_or_path", "lm", config.dummy_overrides
    )
    base = auto_class.from_pretrained(path, dtype=torch_dtype_from_str(config.dtype))
    model = PeftModel.from_pretrained(base, adapter_dir)
    untie_output_embedding(model)
    return model.merge_and_unload()


def untie_output_embedding(model: nn.Module) -> None:
    """Give the output layer its own copy of a weight it shares with the input embedding (GPT-2, tied T5 variants).

    Merging a LoRA adapter on ``lm_head`` writes W + ΔW into the base weight; when that weight is also the input
    embedding, the merged model embeds its inputs with W + ΔW as well and computes another policy. After this call
    the two are separate tensors with equal values, and the config says ``tie_word_embeddings: false`` so that a
    saved model loads untied. Does nothing when they are not tied.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inputs, outputs = base.get_input_embeddings(), base.get_output_embeddings()
    if inputs is None or outputs is None:
        return
    layer = outputs.get_base_layer() if hasattr(outputs, "get_base_layer") else outputs
    if layer.weight.data_ptr() != inputs.weight.data_ptr():
        return
    layer.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=layer.weight.requires_grad)
    for config in {id(c): c for c in (base.config, base.config.get_text_config())}.values():
        config.tie_word_embeddings = False
