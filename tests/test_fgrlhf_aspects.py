"""FineGrainedRLHF-style token classifiers read as the authors read them: label roles and the marker before each unit.

The classifier is a real (tiny) ``LongformerForTokenClassification`` with a RoBERTa-style byte-level BPE tokenizer
(``<s>``, ``</s>``, ``<pad>`` specials, ``add_prefix_space``), hand-set so that its logits depend only on the token
position: the "ignore" class has the largest logit everywhere, and error vs no error is chosen per position. A reader
that took the argmax over all classes, or read a unit anywhere but at the marker *before* it, gets other labels.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LongformerConfig, LongformerForTokenClassification

from alarm_pl.assets.tokenizer_builders import train_roberta_bpe
from alarm_pl.rewards.aspects.model_aspects import (
    TokenClassificationAspect,
    check_label_roles,
    marked_words,
    reads_positive,
)
from alarm_pl.rewards.base import ScoringInput

PROMPT = "question: Who won? context: t"
RESPONSE = "Cats purr. Dogs bark loudly at night! Yes."  # sentences of 2, 5 and 1 words
CORPUS = [f"{PROMPT} answer: {RESPONSE} The cats won."] * 8
# The model's input, word-split with a marker before each sentence (hand-written; the test checks the tokenizer
# agrees): markers at token positions 11, 15 and 22, the tokenizer's own final </s> at 25.
TOKENS = [
    "<s>",
    "Ġquestion",
    ":",
    "ĠWho",
    "Ġwon",
    "?",
    "Ġcontext",
    ":",
    "Ġt",
    "Ġanswer",
    ":",
    "</s>",
    "ĠCats",
    "Ġpurr",
    ".",
    "</s>",
    "ĠDogs",
    "Ġbark",
    "Ġloudly",
    "Ġat",
    "Ġnight",
    "!",
    "</s>",
    "ĠYes",
    ".",
    "</s>",
]
# Token positions the classifier reads as "no error" (all others: error): the markers of sentences 1 and 3 above, and
# position 12, the second marker when the relevance template drops the context (last test).
NO_ERROR_AT = {11, 12, 22}
# FineGrainedRLHF label ids (sorted label names): factuality [F-ERR, Ignore, O], relevance [Ignore, NF-ERR, O]
SCHEMES = {
    "factuality": {"error": 0, "ignore": 1, "no_error": 2, "names": ["F-ERR", "Ignore", "O"]},
    "relevance": {"error": 1, "ignore": 0, "no_error": 2, "names": ["Ignore", "NF-ERR", "O"]},
}
PV, NV = 0.5, -0.3  # asymmetric, so a swapped sign shows


def save_position_classifier(path, scheme: dict, tokenizer) -> None:
    """A 1-layer Longformer token classifier whose logits depend only on the position.

    Hidden dimension 0 means "error", 1 "ignore", 2 "no error". Every word embedding is [0, 3, 0, 0] (ignore far
    ahead); the position embedding adds 1 to "no error" at the positions in ``NO_ERROR_AT`` and 1 to "error"
    everywhere else. The layer's output projections are zero, so it passes its input through its residual paths
    and LayerNorms, which keep the order of the components. The classifier maps dimension d to the class id the
    scheme gives it, so the logits are ordered ignore > (no error or error) in the scheme's own ids.
    """
    config = LongformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
        max_position_embeddings=66,
        attention_window=4,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        sep_token_id=2,
        num_labels=3,
        id2label=dict(enumerate(scheme["names"])),
        label2id={n: i for i, n in enumerate(scheme["names"])},
    )
    model = LongformerForTokenClassification(config)  # dropout 0.1 as configured; the scorer runs it in eval mode
    with torch.no_grad():
        emb = model.longformer.embeddings
        emb.word_embeddings.weight.copy_(torch.tensor([0.0, 3.0, 0.0, 0.0]).expand_as(emb.word_embeddings.weight))
        emb.token_type_embeddings.weight.zero_()
        emb.position_embeddings.weight.zero_()[:, 0] = 1.0  # error ahead of no error ...
        for index in NO_ERROR_AT:  # ... except at these token indices (position id = index + pad id + 1)
            emb.position_embeddings.weight[index + 2] = torch.tensor([0.0, 0.0, 1.0, 0.0])
        layer = model.longformer.encoder.layer[0]
        for linear in (layer.attention.output.dense, layer.output.dense):
            linear.weight.zero_()
            linear.bias.zero_()
        rows = {scheme["error"]: 0, scheme["ignore"]: 1, scheme["no_error"]: 2}
        model.classifier.weight.copy_(torch.eye(4)[[rows[c] for c in range(3)]])
        model.classifier.bias.zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


@pytest.fixture(scope="module")
def tokenizer():
    return train_roberta_bpe(CORPUS, vocab_size=400)


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def scheme_dir(request, tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp(request.param)
    save_position_classifier(path, SCHEMES[request.param], tokenizer)
    return request.param, str(path)


def aspect_for(scheme_name: str, path: str, **kwargs) -> TokenClassificationAspect:
    scheme = SCHEMES[scheme_name]
    aspect = TokenClassificationAspect(
        path,
        name=scheme_name,
        positive_value=PV,
        negative_value=NV,
        positive_label=scheme["no_error"],
        negative_label=scheme["error"],
        ignore_labels=[scheme["ignore"]],
        marker="</s>",
        **kwargs,
    )
    aspect.setup(torch.device("cpu"))
    return aspect


def policy_input() -> ScoringInput:
    """Three right-padded responses of 12, 3 and 1 policy tokens (the last one EOS only); the policy's tokens
    differ from the reward model's ("purr." is one token, "night!" two) and end with an EOS of empty span."""
    responses = [RESPONSE, "Cats won.", ""]
    spans = [
        [
            (0, 4),
            (4, 10),
            (10, 15),
            (15, 20),
            (20, 27),
            (27, 30),
            (30, 36),
            (36, 37),
            (37, 41),
            (41, 42),
            (42, 42),
            (42, 42),
        ],
        [(0, 4), (4, 9), (9, 9)],
        [(0, 0)],
    ]
    width = max(len(s) for s in spans)
    mask = torch.tensor([[j < len(s) for j in range(width)] for s in spans])  # (B, T)
    return ScoringInput(
        prompts=[PROMPT] * 3,
        responses=responses,
        references=[None] * 3,
        metadata=[{"question": "Who won?"}] * 3,
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=spans,
    )


def test_marked_words_put_the_marker_before_every_unit():
    words, positions = marked_words("Q: x answer: ", RESPONSE, [(0, 10), (11, 37), (38, 42)], "", "</s>")
    assert words == [
        "Q:",
        "x",
        "answer:",
        "</s>",
        "Cats",
        "purr.",
        "</s>",
        "Dogs",
        "bark",
        "loudly",
        "at",
        "night!",
        "</s>",
        "Yes.",
    ]
    assert positions == [3, 6, 12]
    # whitespace (newlines, runs of spaces) is normalised away, text after the response is kept
    words, positions = marked_words("a\n\nb  ", "One.\n Two.", [(0, 4), (6, 10)], " end", "</s>")
    assert (words, positions) == (["a", "b", "</s>", "One.", "</s>", "Two.", "end"], [2, 4])


def test_tokenizer_sees_the_marker_as_one_special_token(tokenizer):
    words, _ = marked_words(f"{PROMPT} answer: ", RESPONSE, [(0, 10), (11, 37), (38, 42)], "", "</s>")
    ids = tokenizer(words, is_split_into_words=True)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == TOKENS


def test_units_map_to_labels_read_at_their_markers_and_land_on_policy_tokens(scheme_dir):
    name, path = scheme_dir
    score = aspect_for(name, path).score(policy_input())
    # response 0: markers at 11 (no error), 15 (error), 22 (no error) → +PV on "purr." (policy token 1), NV on
    # "!" (token 7), PV on "." (token 9). Reading after each unit (15, 22, 25) would give NV, PV, NV instead.
    # response 1: "<s> question: ... answer: </s> Cats won. </s>": its marker is token 11 again → no error, PV on
    # policy token 1 ("won.").  Response 2 is empty: no unit, no value, metric 0.5.
    expected = torch.zeros(3, 12)
    expected[0, 1], expected[0, 7], expected[0, 9] = PV, NV, PV
    expected[1, 1] = PV
    torch.testing.assert_close(score.values, expected)
    assert score.placed.tolist() == (expected != 0).tolist()
    torch.testing.assert_close(score.metric, torch.tensor([2 / 3, 1.0, 0.5]))


def test_ignore_is_never_the_reading_even_when_its_logit_is_largest(scheme_dir, tokenizer):
    name, path = scheme_dir
    aspect = aspect_for(name, path)
    words, positions = marked_words(f"{PROMPT} answer: ", RESPONSE, [(0, 10), (11, 37), (38, 42)], "", "</s>")
    logits = aspect.model.word_token_logits([words])[0]
    marker_rows = logits.logits[[11, 15, 22]]  # (3, C)
    scheme = SCHEMES[name]
    assert (marker_rows.argmax(dim=1) == scheme["ignore"]).all()  # a plain argmax would read "ignore" everywhere
    assert logits.word_ids[[11, 15, 22]].tolist() == positions
    assert aspect.unit_labels(policy_input(), [[(0, 10), (11, 37), (38, 42)], [], []])[0] == [True, False, True]


def test_reads_positive_compares_only_the_two_roles():
    # factuality ids: 0 error, 1 ignore, 2 no error
    assert reads_positive(torch.tensor([0.1, 9.0, 0.2]), positive=2, negative=0)
    assert not reads_positive(torch.tensor([0.3, 9.0, 0.2]), positive=2, negative=0)
    assert not reads_positive(torch.tensor([0.2, 9.0, 0.2]), positive=2, negative=0)  # tie → error, as argmax [e, n]
    # relevance ids: 0 ignore, 1 error, 2 no error
    assert reads_positive(torch.tensor([9.0, -1.0, 0.0]), positive=2, negative=1)


def test_label_roles_are_checked_against_the_checkpoint():
    names = dict(enumerate(SCHEMES["factuality"]["names"]))
    check_label_roles(3, names, positive=2, negative=0, ignore=[1], where="scorer 'factuality'")
    with pytest.raises(ValueError, match=r"class 1 'Ignore'.*ignored.*positive"):
        check_label_roles(3, names, positive=1, negative=0, ignore=[2], where="scorer 'factuality'")
    with pytest.raises(ValueError, match=r"class 0 'Ignore'"):  # relevance roles on a factuality-style checkpoint
        check_label_roles(3, dict(enumerate(SCHEMES["relevance"]["names"])), 2, 0, [1], "scorer 'relevance'")
    with pytest.raises(ValueError, match="exactly once"):
        check_label_roles(3, {}, positive=2, negative=0, ignore=[], where="scorer 'x'")
    with pytest.raises(ValueError, match=r"distinct class ids in \[0, 3\)"):
        check_label_roles(3, {}, positive=3, negative=0, ignore=None, where="scorer 'x'")
    check_label_roles(2, {0: "LABEL_0", 1: "LABEL_1"}, positive=1, negative=0, ignore=None, where="scorer 'x'")


def test_setup_refuses_wrong_roles_marker_and_prefix_space(scheme_dir, tmp_path):
    name, path = scheme_dir
    scheme = SCHEMES[name]
    wrong = TokenClassificationAspect(
        path,
        name=name,
        positive_label=scheme["ignore"],
        negative_label=scheme["error"],
        ignore_labels=[scheme["no_error"]],
        marker="</s>",
    )
    with pytest.raises(ValueError, match=f"scorer '{name}'"):
        wrong.setup(torch.device("cpu"))
    with pytest.raises(ValueError, match="marker '<sep>' is not a special token"):
        TokenClassificationAspect(
            path,
            name=name,
            positive_label=scheme["no_error"],
            negative_label=scheme["error"],
            ignore_labels=[scheme["ignore"]],
            marker="<sep>",
        ).setup(torch.device("cpu"))
    bare = tmp_path / "no_prefix_space"
    save_position_classifier(bare, scheme, train_roberta_bpe(CORPUS, vocab_size=400, add_prefix_space=False))
    with pytest.raises(ValueError, match="add_prefix_space"):
        aspect_for(name, str(bare)).score(policy_input())


def test_relevance_reads_question_answer_from_metadata(scheme_dir):
    name, path = scheme_dir
    aspect = aspect_for(name, path, template="question: {question} answer: {response}")
    inputs = policy_input()
    frame, at = aspect.model.format(["ignored prompt"], [""], [None], ["Who won?"])[0]
    assert frame == "question: Who won? answer: " and at == len(frame)
    # "<s> question: Who won? answer:" is 8 tokens, so the markers sit at 8, 12 and 19: error, no error, error;
    # response 1's single marker at 8: error
    score = aspect.score(inputs)
    assert score.values[0, [1, 7, 9]].tolist() == pytest.approx([NV, PV, NV])
    assert score.values[1, 1].item() == pytest.approx(NV)
    missing = ScoringInput(**{**inputs.__dict__, "metadata": [{}] * 3})
    with pytest.raises(Exception, match="question"):
        aspect.score(missing)
