"""Chat templates: GGUF Jinja templates and the named family formats."""

from __future__ import annotations

import pytest

from homeport.backends.base import Message
from homeport.backends.llamacpp.templates import ChatTemplate
from homeport.errors import InvalidRequest

CHATML_JINJA = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_jinja_template_from_gguf() -> None:
    t = ChatTemplate(jinja_source=CHATML_JINJA, named=None, bos="<s>", eos="</s>")
    out = t.render([Message("system", "Be brief."), Message("user", "Hi")])
    assert out == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_named_chatml_matches_the_jinja_form() -> None:
    named = ChatTemplate(jinja_source=None, named="chatml", bos="", eos="")
    jinja = ChatTemplate(jinja_source=CHATML_JINJA, named=None, bos="", eos="")
    messages = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert named.render(messages) == jinja.render(messages)


def test_gemma_folds_system_into_first_user_turn() -> None:
    t = ChatTemplate(jinja_source=None, named="gemma", bos="<bos>", eos="<eos>")
    out = t.render(
        [Message("system", "Be kind."), Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Bye")]
    )
    assert out == (
        "<bos><start_of_turn>user\nBe kind.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


def test_template_raise_exception_is_a_400() -> None:
    t = ChatTemplate(jinja_source="{{ raise_exception('roles must alternate') }}", named=None, bos="", eos="")
    with pytest.raises(InvalidRequest) as err:
        t.render([Message("user", "x")])
    assert "roles must alternate" in err.value.message and err.value.param == "messages"


def test_model_without_template_needs_a_named_one() -> None:
    with pytest.raises(ValueError):
        ChatTemplate(jinja_source=None, named=None, bos="", eos="")
