#!/usr/bin/env python3
"""Writes expected.json: each case's template, inputs and what jinja2 renders.

The recipe for ChatTemplateTest: the environment is the one Hugging Face
transformers renders chat templates with (an ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks and loopcontrols, the globals
raise_exception and strftime_now, tojson as json.dumps, and a transparent
{% generation %} tag). Messages go in with their keys sorted, as the C++
side's nlohmann::json holds them. Run with jinja2 3.1.x:
    python3 make-expected.py > expected.json

Tuples (dict.items()) print as lists on the C++ side, so no case prints one.

Templates: qwen3.jinja is Qwen3's chat_template, copied from its
tokenizer_config.json. The others follow the published tokenizer_config.json
templates of Llama-2-7b-chat-hf, Meta-Llama-3-8B-Instruct,
Llama-3.1-8B-Instruct, Mistral-7B-Instruct-v0.1, zephyr-7b-beta (as
TinyLlama-Chat) and ChatML (Qwen1.5/OpenHermes style), written out from them
without a fetch: check against the model repositories before relying on a
byte-for-byte copy. plain.jinja must equal ChatTemplate::kPlainSource.
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


class Generation(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        return caller()


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[Generation, jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "  Hello. "},
    {"role": "user", "content": "What is 2+2?\nAnswer briefly."},
]
NO_SYSTEM = CHAT[1:]
BAD_ORDER = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city, in \u00b0C.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_CHAT = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Z\u00fcrich?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Z\u00fcrich"}}}]},
    {"role": "tool", "content": "{\"temp\": 21.5}"},
    {"role": "user", "content": "<tool_response>x</tool_response>"},
]
THINK_CHAT = [
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "<think>\nreasoning one\n</think>\n\nA1"},
    {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "A2", "reasoning_content": "reasoning two"},
]

CASES = []


def real(name, file, messages, agp, **variables):
    CASES.append({"name": name, "template_file": file, "messages": messages,
                  "add_generation_prompt": agp, "variables": dict(SPECIAL, **variables)})


def unit(name, template, messages=NO_SYSTEM, agp=False, **variables):
    CASES.append({"name": name, "template": template, "messages": messages,
                  "add_generation_prompt": agp, "variables": dict(SPECIAL, **variables)})


for file, stem in [("chatml.jinja", "ChatML"), ("llama-2-chat.jinja", "Llama2Chat"),
                   ("llama-3.jinja", "Llama3"), ("llama-3.1.jinja", "Llama31"),
                   ("mistral-instruct.jinja", "MistralInstruct"), ("zephyr.jinja", "Zephyr"),
                   ("qwen3.jinja", "Qwen3")]:
    system = CHAT if stem not in ("MistralInstruct",) else NO_SYSTEM
    real(stem + "_System_Prompt", file, system, True)
    real(stem + "_System_NoPrompt", file, system, False)
    real(stem + "_NoSystem_Prompt", file, NO_SYSTEM, True)
    real(stem + "_OneUser", file, NO_SYSTEM[:1], True)
real("Llama2Chat_Alternation", "llama-2-chat.jinja", BAD_ORDER, True)
real("MistralInstruct_Alternation", "mistral-instruct.jinja", BAD_ORDER, True)
real("MistralInstruct_SystemRole", "mistral-instruct.jinja", CHAT, True)
real("Llama31_Tools", "llama-3.1.jinja", TOOL_CHAT[:4], True, tools=TOOLS)
real("Llama31_ToolsInSystem", "llama-3.1.jinja", TOOL_CHAT[:4], True, tools=TOOLS, tools_in_user_message=False)
real("Llama31_BuiltinTools", "llama-3.1.jinja", NO_SYSTEM, True, builtin_tools=["brave_search", "code_interpreter"],
     date_string="01 Dec 2026")
real("Qwen3_Tools", "qwen3.jinja", TOOL_CHAT, True, tools=TOOLS)
real("Qwen3_Thinking", "qwen3.jinja", THINK_CHAT, False)
real("Qwen3_NoThinking", "qwen3.jinja", THINK_CHAT[:3], True, enable_thinking=False)

# Whitespace control, trim_blocks and lstrip_blocks.
unit("Ws_TrimBlocks", "{% if true %}\nA\n{% endif %}\nB\n")
unit("Ws_LstripBlocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz")
unit("Ws_LstripNotForVariables", "a\n    {{ 'v' }}\n  {# c #}\nb")
unit("Ws_LstripNotMidLine", "a {% if true %}b{% endif %} c")
unit("Ws_Minus", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}\n  c {{- ' d ' -}} e")
unit("Ws_Plus", "a\n  {%+ if true +%}\nb\n  {%+ endif %}\nc")
unit("Ws_Comment", "a\n  {# note #}\nb {#- trim -#} c\n{#+ keep +#}\nd")
unit("Ws_TrailingNewline", "line\n")
unit("Ws_CrLf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc")
unit("Ws_StartOfTemplate", "   {% if true %}x{% endif %}")
# Loops.
unit("Loop_Vars", "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/"
     "{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}")
unit("Loop_Items", "{% for k, v in {'b': 1, 'a': [2, 3]}.items() %}{{ k }}={{ v }},{% endfor %}")
unit("Loop_Filter", "{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }}|{{ loop.length }} {% endfor %}")
unit("Loop_Else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in 'ab' %}{{ x }}{% else %}no{% endfor %}")
unit("Loop_BreakContinue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}")
unit("Loop_Nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.last }};{% endfor %}")
unit("Loop_ScopeDoesNotLeak", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = i * 10 %}{{ x }}{% endfor %}|{{ x }}")
unit("Loop_PrevNext", "{% for i in [1, 2, 3] %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }} {% endfor %}")
unit("Loop_DictKeys", "{% for k in {'z': 1, 'y': 2} %}{{ k }}{% endfor %}")
unit("Loop_Undefined", "{% for x in nothing %}x{% else %}none{% endfor %}")
unit("Namespace", "{% set ns = namespace(count=0, found=false) %}{% for m in messages %}"
     "{% set ns.count = ns.count + 1 %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}"
     "{% endfor %}{{ ns.count }} {{ ns.found }}")
unit("SetBlock", "{% set greeting %}Hello {{ messages[0].content }}{% endset %}[{{ greeting | upper }}]")
unit("SetTuple", "{% set a, b = [1, 'two'] %}{{ b }}{{ a }}")
unit("Generation", "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %};{% endfor %}")
unit("IfElif", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}")
# Expressions.
unit("Expr_Literals", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }} {{ 0.1 }} {{ 1e-7 }} {{ true }} {{ False }} "
     "{{ none }} {{ 'it\\'s' }} {{ \"a\\tb\" }} {{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1.0} }} {{ 'a' 'b' }}")
unit("Expr_Arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} "
     "{{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 * 2 }} {{ 7.5 // 2 }} {{ 'ab' * 3 }} {{ [1] + [2] }} "
     "{{ 1 + true }} {{ 'a' ~ 1 ~ none ~ nothing }} {{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }}")
unit("Expr_Compare", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} "
     "{{ 3 > 2 > 2 }} {{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} "
     "{{ nothing == nothing }} {{ nothing == none }} {{ true == 1 }}")
unit("Expr_Logic", "{{ true and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ none or [] }} {{ not (1 and 0) }} "
     "{{ 'a' if 1 else 'b' }} {{ 'a' if 0 else 'b' }} [{{ 'a' if 0 }}] {{ 1 if 0 else 2 if 1 else 3 }}")
unit("Expr_Subscript", "{{ messages[0].role }} {{ messages[-1]['content'] }} {{ 'hello'[1] }} {{ 'hello'[-1] }} "
     "{{ [1, 2, 3][5] }} {{ messages[0].missing }}")
unit("Expr_Slices", "{{ [1, 2, 3, 4, 5][1:3] }} {{ [1, 2, 3, 4, 5][::-1] }} {{ [1, 2, 3, 4, 5][::2] }} "
     "{{ [1, 2, 3][-2:] }} {{ 'hello'[1:-1] }} {{ 'hello'[::-1] }} {{ [1, 2, 3, 4][3:0:-2] }} {{ 'h\u00e9llo'[:2] }} "
     "{{ messages[1:] | length }} {{ [1, 2][5:] }}")
unit("Expr_Truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}")
unit("Expr_Unicode", "{{ 'h\u00e9\u4e16' | length }} {{ 'h\u00e9\u4e16' | reverse }} {{ 'h\u00e9\u4e16' | list }}")
# Tests.
unit("Tests", "{{ x is defined }} {{ nothing is defined }} {{ nothing is undefined }} {{ none is none }} "
     "{{ 'a' is string }} {{ 1 is number }} {{ 1.5 is number }} {{ {} is mapping }} {{ [] is mapping }} "
     "{{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ true is true }} "
     "{{ 1 is true }} {{ false is false }} {{ true is boolean }} {{ 1 is boolean }} {{ 1 is integer }} "
     "{{ true is integer }} {{ 1.0 is float }} {{ 2 is even }} {{ 3 is odd }} {{ 1 is not none }} "
     "{{ 'a' is not string }} {{ 6 is divisibleby 3 }} {{ 2 is eq 2 }} {{ 3 is gt(2) }} {{ nothing is iterable }}",
     x=1)
# Filters.
unit("Filters_Strings", "[{{ '  a b  ' | trim }}] [{{ 'xxaxx' | trim('x') }}] {{ 'aBc' | upper }} {{ 'aBc' | lower }} "
     "{{ 'hELLO world' | capitalize }} {{ 'hello wORLD-foo (bar' | title }} {{ 'aaa' | replace('a', 'b', 2) }} "
     "{{ 3 | string }} {{ [1] | string }} {{ '<a&b>' | escape }} {{ 'x' | safe }}")
unit("Filters_Length", "{{ messages | length }} {{ 'abc' | count }} {{ {'a': 1} | length }} {{ nothing | length }}")
unit("Filters_Default", "{{ nothing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} "
     "{{ none | d('n', boolean=true) }} {{ 'v' | d('x') }} [{{ nothing | default }}]")
unit("Filters_Lists", "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | last }} {{ [1, 2] | join('-') }} "
     "{{ ['a', 'b'] | join }} {{ messages | map(attribute='role') | join(',') }} {{ [1, 2] | reverse | list }} "
     "{{ ['a', 'A', 'b', 'a'] | unique | list }} {% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}{{ v }}{% endfor %} {{ 'ab' | list }} "
     "{{ ['x', 'Y'] | map('upper') | list }} {{ messages | join(', ', attribute='content') }} {{ [] | first }}")
unit("Filters_Select", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} "
     "{{ messages | rejectattr('role', 'equalto', 'user') | list | length }} {{ [0, 1, 2, 3] | select('odd') | list }} "
     "{{ [0, 1, '', 'a'] | select | list }} {{ [1, 2, 3] | reject('gt', 1) | list }} "
     "{{ messages | selectattr('missing') | list }} {{ messages | selectattr('missing', 'undefined') | list | length }}")
unit("Filters_Numbers", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} "
     "{{ '2.5' | float }} {{ 2 | float }} {{ -3 | abs }} {{ true | int }}")
unit("Filters_ToJson", "{{ messages[0] | tojson }} {{ {'b': [1, 2.5, none, true], 'a': 'x\"\\n\u00e9'} | tojson }} "
     "{{ [] | tojson }} {{ {} | tojson(indent=2) }}|{{ {'a': [1, {'b': 2}], 'c': {}} | tojson(indent=2) }}|{{ tools | tojson }}",
     tools=TOOLS)
unit("Filters_Indent", "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(1, blank=true) }}")
unit("Methods_Strings", "[{{ '  x  '.strip() }}] [{{ '--x--'.strip('-') }}] [{{ '\\n\\nx\\n'.lstrip('\\n') }}] "
     "[{{ 'x  '.rstrip() }}] {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} "
     "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('x') }} {{ 'hello'.startswith(('x', 'h')) }} "
     "{{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'a-b'.replace('-', '+') }} {{ 'hello world'.title() }} "
     "{{ 'x</think>\\n\\ny'.split('</think>')[-1].lstrip('\\n') }}")
unit("Methods_Dicts", "{% set d = {'a': 1, 'b': 2} %}{{ d.keys() | list }} {{ d.values() | list }} {% for p in d.items() %}{{ p[0] }}{{ p[1] }}{% endfor %} "
     "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }} {{ d['b'] }} {{ d.b }}")
unit("Undefined_Printing", "[{{ nothing }}] [{{ messages[0].nothing }}] [{{ nothing ~ 'x' }}] {{ nothing | list }}")
unit("Expr_Floats", "{{ 1e16 }} {{ 1.5e16 }} {{ 123456789.125 }} {{ 1 / 3 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.5 }} "
     "{{ 2.5e-10 }} {{ 10 / 4 }} {{ [0.1, 1e100] | tojson }} {{ 3.0 | tojson }}")
unit("Expr_NestedBraces", "{{ {'a': {'b': '}}'}}.a.b }} {{ ['%}'] | first }}{# }} #}")
unit("Expr_StringEscapes", "{{ '\\u00e9\\x41\\\\' }} {{ '\\'' }} {{ \"\\\"\" }} {{ '\\u0001' | tojson }}")
unit("Tests_BareArgument", "{{ false is sameas false }} {{ none is sameas none }} {{ 5 is divisibleby 5 }} "
     "{{ 'a' is in 'abc' }} {{ 1 is ne 1 }} {{ messages[0].content is string }} {{ [] is string }}")
unit("Set_AtTopLevelInIf", "{% if true %}{% set x = 'inner' %}{% endif %}{{ x }}{% set messages = messages[:1] %}"
     "{{ messages | length }}")
unit("Ws_SetLines", "A\n{%- set x = 1 -%}\n  B {{ x }}\n{% set y = 2 %}\n  C {{ y }}\n")
unit("Loop_TupleUnpack", "{% for a, b in [[1, 'x'], [2, 'y']] %}{{ a }}{{ b }}{% if not loop.last %},{% endif %}{% endfor %}")
unit("Dict_Literals", "{% set d = {'name': 'f', 'arguments': {'z': 1, 'a': 2}} %}{{ d | tojson }} {{ d.arguments.z }}")
unit("Content_List", "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
     "{% for part in m.content %}{% if part.type == 'text' %}{{ part.text }}{% endif %}{% endfor %}{% endif %}|{% endfor %}",
     [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}, {"type": "text", "text": "!"}]},
      {"role": "assistant", "content": "ok"}])
unit("Join_Numbers", "{{ [1, 2.5, none, true] | join(', ') }} {{ range(3) | list }} {{ range(1, 7, 2) | list }}")
unit("Error_IndexPastEnd", "{{ messages[5].content }}")
unit("Error_CallUndefined", "{{ nothing() }}")
unit("Strftime", "{{ strftime_now('%Y-%m-%d') | length }}")
unit("RaiseException", "{% if messages | length > 1 %}{{ raise_exception('Too many: ' ~ messages | length) }}{% endif %}")
unit("Error_UndefinedAttribute", "{{ nothing.attr }}")
unit("Error_UndefinedMethod", "{{ nothing.strip() }}")
unit("Error_AddStringInt", "{{ 'a' + 1 }}")
unit("Error_DivisionByZero", "{{ 1 // 0 }}")
unit("Error_NotIterable", "{% for x in 3 %}{% endfor %}")
unit("Error_SetAttributeOnDict", "{% set d = {} %}{% set d.x = 1 %}")
unit("Plain_Prompt", open(os.path.join(HERE, "plain.jinja")).read(), CHAT, True)
unit("Plain_NoPrompt", open(os.path.join(HERE, "plain.jinja")).read(), CHAT, False)


def sorted_keys(x):
    return json.loads(json.dumps(x, sort_keys=True))


out = []
for case in CASES:
    case["messages"] = sorted_keys(case["messages"])
    case["variables"] = sorted_keys(case["variables"])
    source = case.get("template")
    if source is None:
        with open(os.path.join(HERE, case["template_file"]), encoding="utf-8") as f:
            source = f.read()
    try:
        rendered = env.from_string(source).render(messages=case["messages"],
                                                  add_generation_prompt=case["add_generation_prompt"],
                                                  **case["variables"])
        case["output"] = rendered
    except TemplateError as e:
        case["raised"] = str(e)
    except Exception as e:  # any other runtime error: the C++ side must fail too
        case["error"] = f"{type(e).__name__}: {e}"
    out.append(case)
print(json.dumps(out, indent=1, ensure_ascii=False))
