"""Word equations (OMML, ``m:oMath``) as plain text and as LaTeX.

The plain text is the equation's characters in order (what a search finds); the LaTeX follows the structure
(fractions, scripts, radicals, delimiters, n-ary operators, functions, accents, matrices) the way docling
writes it, so ``A=πr²`` reads ``A= \\pi r^{2}``. Unknown elements contribute their content.
"""

# ruff: noqa: RUF001  (the tables below map look-alike mathematical characters on purpose)
from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pagemill.documents.office.docx_xml import Element, attr, child, key

_SYMBOLS: Final = {
    "α": "\\alpha", "β": "\\beta", "γ": "\\gamma", "δ": "\\delta", "ε": "\\varepsilon", "ϵ": "\\epsilon",
    "ζ": "\\zeta", "η": "\\eta", "θ": "\\theta", "ι": "\\iota", "κ": "\\kappa", "λ": "\\lambda", "μ": "\\mu",
    "ν": "\\nu", "ξ": "\\xi", "π": "\\pi", "ρ": "\\rho", "σ": "\\sigma", "τ": "\\tau", "υ": "\\upsilon",
    "φ": "\\varphi", "ϕ": "\\phi", "χ": "\\chi", "ψ": "\\psi", "ω": "\\omega", "Γ": "\\Gamma",
    "Δ": "\\Delta", "Θ": "\\Theta", "Λ": "\\Lambda", "Ξ": "\\Xi", "Π": "\\Pi", "Σ": "\\Sigma",
    "Φ": "\\Phi", "Ψ": "\\Psi", "Ω": "\\Omega", "×": "\\times", "·": "\\cdot", "⋅": "\\cdot",
    "÷": "\\div", "±": "\\pm", "∓": "\\mp", "≤": "\\leq", "≥": "\\geq", "≠": "\\neq", "≈": "\\approx",
    "≡": "\\equiv", "∞": "\\infty", "→": "\\rightarrow", "←": "\\leftarrow", "⇒": "\\Rightarrow",
    "⇔": "\\Leftrightarrow", "∈": "\\in", "∉": "\\notin", "⊂": "\\subset", "⊆": "\\subseteq",
    "∪": "\\cup", "∩": "\\cap", "∂": "\\partial", "∇": "\\nabla", "∀": "\\forall", "∃": "\\exists",
    "…": "\\ldots", "⋯": "\\cdots", "∘": "\\circ", "°": "^{\\circ}", "′": "'", "−": "-", "∗": "*",
    "∝": "\\propto", "∅": "\\emptyset", "¬": "\\neg", "∧": "\\wedge", "∨": "\\vee", "≪": "\\ll", "≫": "\\gg",
}  # fmt: skip
_NARY: Final = {
    "∑": "\\sum", "∏": "\\prod", "∐": "\\coprod", "∫": "\\int", "∬": "\\iint", "∭": "\\iiint",
    "∮": "\\oint", "∯": "\\oiint", "∰": "\\oiiint", "⋃": "\\bigcup", "⋂": "\\bigcap", "⋀": "\\bigwedge",
    "⋁": "\\bigvee", "⨁": "\\bigoplus", "⨂": "\\bigotimes",
}  # fmt: skip
_ACCENTS: Final = {
    "\u0302": "\\hat", "\u0303": "\\tilde", "\u0304": "\\bar", "\u0305": "\\bar", "\u0307": "\\dot",
    "\u0308": "\\ddot", "\u20d7": "\\vec", "\u0301": "\\acute", "\u0300": "\\grave", "\u0306": "\\breve",
    "\u030c": "\\check",
}  # fmt: skip
_FUNCTIONS: Final = frozenset(
    (
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "coth",
        "log",
        "ln",
        "lg",
        "exp",
        "lim",
        "max",
        "min",
        "sup",
        "inf",
        "det",
        "gcd",
        "arg",
        "deg",
        "dim",
        "hom",
        "ker",
        "Pr",
        "liminf",
        "limsup",
    )
)
_DELIMITERS: Final = {"{": "\\{", "}": "\\}", "〈": "\\langle", "〉": "\\rangle", "‖": "\\|", "": "."}


def omml_text(element: Element) -> str:
    """The equation's characters, in order."""
    return "".join(item.text or "" for item in element.iter() if key(item) in ("m:t", "w:t"))


def omml_latex(element: Element) -> str:
    """The equation (``m:oMath`` or ``m:oMathPara``) as LaTeX, without ``$`` delimiters."""
    if key(element) == "m:oMathPara":
        return " \\\\ ".join(_latex(item) for item in element if key(item) == "m:oMath")
    return _latex(element)


def _latex(element: Element) -> str:
    """An element's LaTeX: its own rule, else its children's LaTeX in order."""
    rule = _RULES.get(key(element))
    if rule is not None:
        return rule(element)
    return "".join(_latex(item) for item in element if not key(item).endswith("Pr"))


def _part(element: Element, name: str) -> str:
    found = child(element, name)
    return _latex(found).strip() if found is not None else ""


def _property(element: Element, name: str, default: str) -> str:
    """``m:val`` of a property in the element's ``...Pr`` child (``m:chr`` of ``m:naryPr``)."""
    props = next((item for item in element if key(item).endswith("Pr")), None)
    found = child(props, name)
    if found is None:
        return default
    value = attr(found, "m:val")
    return default if value is None else value


def _run(element: Element) -> str:
    text = "".join(item.text or "" for item in element if key(item) in ("m:t", "w:t"))
    return "".join(_symbol(char) for char in text)


def _symbol(char: str) -> str:
    command = _SYMBOLS.get(char) or _NARY.get(char)
    return f" {command} " if command and command[0] == "\\" else (command or char)


def _fraction(element: Element) -> str:
    num, den = _part(element, "m:num"), _part(element, "m:den")
    kind = _property(element, "m:type", "bar")
    if kind == "lin":
        return f"{num}/{den}"
    if kind == "noBar":
        return f"\\genfrac{{}}{{}}{{0pt}}{{}}{{{num}}}{{{den}}}"
    return f"\\frac{{{num}}}{{{den}}}"


def _scripts(element: Element) -> str:
    base = _part(element, "m:e")
    sub = child(element, "m:sub")
    sup = child(element, "m:sup")
    out = base
    if sub is not None:
        out += f"_{{{_latex(sub).strip()}}}"
    if sup is not None:
        out += f"^{{{_latex(sup).strip()}}}"
    return out


def _pre_scripts(element: Element) -> str:
    sub, sup = _part(element, "m:sub"), _part(element, "m:sup")
    scripts = (f"_{{{sub}}}" if sub else "") + (f"^{{{sup}}}" if sup else "")
    return f"{{}}{scripts}{_part(element, 'm:e')}"


def _radical(element: Element) -> str:
    degree = _part(element, "m:deg")
    body = _part(element, "m:e")
    return f"\\sqrt[{degree}]{{{body}}}" if degree else f"\\sqrt{{{body}}}"


def _delimiter(element: Element) -> str:
    begin = _property(element, "m:begChr", "(")
    end = _property(element, "m:endChr", ")")
    separator = _property(element, "m:sepChr", "|")
    body = separator.join(_latex(item).strip() for item in element if key(item) == "m:e")
    return f"\\left{_DELIMITERS.get(begin, begin)}{body}\\right{_DELIMITERS.get(end, end)}"


def _nary(element: Element) -> str:
    operator = _property(element, "m:chr", "∫")
    command = _NARY.get(operator, operator)
    return f"{command}_{{{_part(element, 'm:sub')}}}^{{{_part(element, 'm:sup')}}}{_part(element, 'm:e')}"


def _function(element: Element) -> str:
    name = _part(element, "m:fName")
    argument = _part(element, "m:e")
    if name in _FUNCTIONS:
        name = f"\\{name}"
        if not argument.startswith(("(", "\\left")):
            argument = f"({argument})"  # Word sets "cos x/L" without brackets; LaTeX readers need them
    elif name.isalpha() and len(name) > 1:
        name = f"\\operatorname{{{name}}}"
    return f"{name}{argument}"


def _limit(element: Element) -> str:
    base = _part(element, "m:e")
    if base in _FUNCTIONS:
        base = f"\\{base}"
    elif base.isalpha() and len(base) > 1:
        base = f"\\operatorname{{{base}}}"
    mark = "_" if key(element) == "m:limLow" else "^"
    return f"{base}{mark}{{{_part(element, 'm:lim')}}}"


def _group(element: Element) -> str:
    char = _property(element, "m:chr", "\u23df")
    command = "\\overbrace" if char in ("\u23de", "\u23b4", "\u0311") else "\\underbrace"
    return f"{command}{{{_part(element, 'm:e')}}}"


def _accent(element: Element) -> str:
    command = _ACCENTS.get(_property(element, "m:chr", "\u0302"), "\\hat")
    return f"{command}{{{_part(element, 'm:e')}}}"


def _bar(element: Element) -> str:
    command = "\\underline" if _property(element, "m:pos", "top") == "bot" else "\\overline"
    return f"{command}{{{_part(element, 'm:e')}}}"


def _rows(element: Element) -> str:
    if key(element) == "m:eqArr":
        rows = [_latex(item).strip() for item in element if key(item) == "m:e"]
        if len(rows) == 1:
            return rows[0]
        return "\\begin{array}{c}" + " \\\\ ".join(rows) + "\\end{array}"
    rows = [
        " & ".join(_latex(cell).strip() for cell in row if key(cell) == "m:e")
        for row in element
        if key(row) == "m:mr"
    ]
    return "\\begin{matrix}" + " \\\\ ".join(rows) + "\\end{matrix}"


_RULES: Final[dict[str, Callable[[Element], str]]] = {
    "m:r": _run,
    "m:f": _fraction,
    "m:sSup": _scripts,
    "m:sSub": _scripts,
    "m:sSubSup": _scripts,
    "m:sPre": _pre_scripts,
    "m:rad": _radical,
    "m:d": _delimiter,
    "m:nary": _nary,
    "m:func": _function,
    "m:limLow": _limit,
    "m:limUpp": _limit,
    "m:groupChr": _group,
    "m:acc": _accent,
    "m:bar": _bar,
    "m:eqArr": _rows,
    "m:m": _rows,
    "w:r": _run,
}
