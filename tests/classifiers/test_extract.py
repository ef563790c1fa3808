"""Final-answer extractors and agreement (table-driven over real answer texts, property-based, and
checked against MMLU-Pro's own extracted letters when the shared data is present)."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifiers import rules
from classifiers.extract import (agree, answer_kind, canonical_number, extract, extract_choice, parse_kind,
                                 prompt_kind)

# Prompts (excerpts of real ones: MMLU-Pro, RouterBench ARC / Winogrande / MBPP, LLMRouter GSM8K / NQ)
MMLU_PRO = ("Which of the following could limit the ability of a central bank to conduct expansionary monetary "
            "policy?\nOptions:\nA. Investment demand is nearly perfectly elastic.\nB. Households carry very little "
            "cash holding their money in checking and saving deposits.\nC. Banks make loans with all excess "
            "reserves.\nD. Households carry a significant amount of cash, holding very little in checking and "
            "saving deposits.\nE. Money demand is nearly perfectly elastic.")
ARC = ("A student is creating a model of a stream in a forested mountain watershed. Which of these features might "
       "be included in the model to show how the stream could overload with sediment?\nA) grasses growing along "
       "the banks of the stream\nB) rocks in the middle of the stream\nC) acres of cleared forest above the "
       "stream\nD) a cabin near the stream\nPrint only a single choice  from \"A\" or \"B\" or \"C\" or \"D\" "
       "without explanation.\nAnswer:")
WINOGRANDE = ("Randy only ever added a little bit of hot sauce to his food, especially compared to Adam, as _ was "
              "much more sensitive to spice.\nA) Randy\nB) Adam\nPrint only a single choice  from \"A\" or \"B\" "
              "without explanation. Answer:")
MBPP = "Write a function to find the first adverb ending with ly and its positions in a given string."
HUMANEVAL = ("\n\ndef strlen(string: str) -> int:\n    \"\"\" Return length of given string\n"
             "    >>> strlen('')\n    0\n")
GSM8K = ("Jill has 10 llamas. After they give birth, Jill traded 8 of the calves for 2 new adult llamas. Then she "
         "sells 1/3 of her herd at the market. How many total llamas  (calves and adults) does Jill have now?")
NQ = "when did season 7 of the walking dead start"
CRUXEVAL = ("You are given a Python function and an assertion containing an input to the function. Complete the "
            "assertion with a literal (no unsimplified expressions, no function calls) containing the output when "
            "executing the provided code on the given input, even if the function is incorrect or incomplete.\n\n"
            "[PYTHON]\ndef f(nums):\n    return [n * 2 for n in nums if n % 2]\nassert f([1, 2, 3]) == ??\n[/PYTHON]")
GSM8K_SALARY = ("Jill gets paid $20 per hour to teach and $30 to be a cheerleading coach. If she works 50 weeks a year, "
                "35 hours a week as a teacher and 15 hours a week as a coach, what's her annual salary?")
GSM8K_PRICE = ("Roger bought a book at a 20% discount and paid $16. What was the original price of the book?")
GSM8K_TALL = ("The tallest tree is 24 feet taller than the middle tree, which is 6 feet less than half the height of "
              "the tallest tree. How tall is the tallest tree?")
MT_BENCH_BLOG = ("Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences "
                 "and must-see attractions.")
PASSAGE = ("Television has changed our lives in many ways. The average American student spends 4 hours a day "
           "watching TV and 1 hour on homework. " + "Some critics say that television makes people violent. " * 8
           + "What is the passage mainly about?")
MBPP_ANSWER = ("Here is a Python function that finds the first adverb ending with \"ly\" and its positions in a "
               "given string:\n\n```python\ndef find_first_adverb(s):\n    # List of adverbs ending with 'ly'\n"
               "    adverbs = [\"actually\", \"currently\", \"finally\"]\n```")


@pytest.mark.parametrize("answer, prompt, letter", [
    # GPT-4o, DeepSeek-Coder-V2, Gemini-1.5-Flash, DeepSeek-V2 on MMLU-Pro (answers' last lines)
    ("- **Option D**: Underweight, abnormal growth, hypothyroidism, hyperinsulinaemia - This does not fit as "
     "leptin deficiency leads to obesity, not underweight.\n\nThe correct answer is:\nThe answer is C.", None, "C"),
    ("the best unit to measure this amount of storage is terabytes (TB).\n\nThe answer is \\(\\boxed{H}\\).",
     None, "H"),
    ("the closest and most logical answer is:\n\n\\[\n\\text{The answer is (E)}\n\\]", None, "E"),
    ("- Stockturn rate in units: 4.5\n\nThe correct option is:\n\\[\n\\boxed{G}\n\\]", None, "G"),
    ("the closest option that aligns with the calculation is:\n\n\\[\n\\text{The answer is } (E)\n\\]", None, "E"),
    ("thereby trapping heat near the surface and warming the planet. The correct option that describes this "
     "process is (F).", None, "F"),
    ("$n_i = \\sqrt{25} = 5$\nThe answer is (F).\n\nFinal Answer: The final answer is $\\boxed{F}$", None, "F"),
    # a cue line above a quoted option line states no letter (MMLU-Pro's scorer scores these 0)
    ("Therefore, the correct answer is:\n\nF. Frequency of T is 0.47 and frequency of t is 0.53", None, None),
    ("The expression that represents her total cost is:\nE. 800,000 + 650 D", None, None),
    ("F. Stratified sample, because the population is divided into five strata", None, None),
    # stray letters in the reasoning are no answer
    ("Option A is wrong because of the tax. Option C ignores the credit, and point B lies on the curve.",
     None, None),
    ("Let me check option C.\nOption C says the rate falls, which matches part I of the question.", None, None),
    # explicit statements the scorer missed (bold, \text{Answer: ...}, boxed after "answer is")
    ("the most likely diagnosis is **PMDD**.\n\nThe answer is **C. Premenstrual dysphoric disorder**.", None, "C"),
    ("The closest option to -2.5 cm is:\n\n\\[ \\text{Answer: (D) -5/2 cm} \\]", None, "D"),
    ("$$P = 0.6915 - 0.0668 \\approx 0.6247$$\n\nThe answer is $\\boxed{C}$.", None, "C"),
    ("The solution for the equation 5x - 5 = -10 is x = -1. The correct option is (H).", None, "H"),
    ("The closest option to 0.657% is:\n\nAnswer: B. 0.58%", None, "B"),
    ("Comparing with the options provided:\n\\[ \\text{Answer: C} \\]", None, "C"),
    # the last statement counts (MMLU-Pro's scorer takes the first: I)
    ("Therefore, the correct answer is (I) Synthesis of fatty acids from acetyl-CoA. The answer is (F).", None, "F"),
    # a letter must end a word (MMLU-Pro's scorer reads "H" from "Hurler")
    ("The correct answer is Hurler syndrome, also known as mucopolysaccharidosis type I (MPS I). Therefore, the "
     "answer is (I).", None, "I"),
    ("Therefore, a Type II error would lead to:\n\nC. Continued production of wrong size ball bearings", None, None),
    ("Comparing the options, the best answer is (B) at 4.76.\n\n**B**", None, "B"),
    ("The options provided do not match the approximate values calculated, indicating that the correct values "
     "would require the use of the generalized charts.", None, None),
    ("Therefore, I cannot calculate the inlet density and initial velocity.  I need the compressibility factor "
     "to proceed.\n", None, None),
    ("Even with the correct formula, the answer is not among the options.\n\nThe answer is (None of the options "
     "are correct).\n", None, None),
    # a letter the prompt does not offer (GPT-4o on a five-option question)
    ("E. Money demand is nearly perfectly elastic.\n\nThe answer is (G) (ii), (iii), and (iv) only.", MMLU_PRO, None),
    ("The answer is (E).", MMLU_PRO, "E"),
    # RouterBench answers (unwrapped from their stored "['C\\n']")
    ("C\n", ARC, "C"),
    ("D (", ARC, "D"),
    ("I do", ARC, None),
    ("A first", None, None),
    ("Randy", WINOGRANDE, "A"),     # the option's text instead of its letter
    ("Randy", None, None),
    ("", None, None),
])
def test_choice(answer, prompt, letter):
    assert extract(answer, "choice", prompt) == letter


@pytest.mark.parametrize("answer, number", [
    # MMLU-Pro math / science answers (Gemini-1.5-Flash, DeepSeek-Coder-V2): a letter states no number
    ("$$E = 1990 \\times 1991 - 1989 \\times 1990 = 1990(1991 - 1989) = 1990(2) = 3980$$\nThe answer is (B)\n",
     None),
    ("The fourth term is -2 * 8 = -16.\nThe fifth term is -2 * -16 = 32.\nThe answer is (C)\n", None),
    ("\\[ \\Delta S \\approx 2.067 \\text{ kJ/K} \\]\n\nThe closest option is:\n\n\\[ \\boxed{C} \\]", None),
    ("Therefore, the value of the double integral is -756.\n\nThe answer is (E)\n", None),
    # a last line that ends an equation
    ("Converting Joules to ergs (1 J = 10^7 ergs):\n\n$\\Delta U = 4.5 \\times 10^7 ergs$", "45000000"),
    ("\\[ \\Delta S \\approx 2.067 \\text{ kJ/K} \\]", "2.067"),
    ("She pays 3 * 6 = 18 dollars in all.", "18"),
    ("Total: 12 + 30 = 42 apples", "42"),
    # the stated answer, not the check after it; never a stray number of the reasoning
    ("6 * 7 = 42, so the answer is 42. Check: 6*7=42", "42"),
    ("The answer is 42.\nI verified it in 3 steps.", "42"),
    ("Jill had 10 llamas, traded 8 and bought 2.\nWe can solve this in 3 steps.", None),
    ("She buys 4 packs of 6 eggs and uses 5 of them for a cake, leaving her with plenty.", None),
    ("Jill now has 10 - 8 + 2 = 4 adults.\nTherefore, Jill has 9 llamas in all.", "9"),
    ("2 and 40 make 42. So 42", "42"),
    ("Add the two piles.\nSo the sum is 12, and then 30 more makes 42.", None),   # two numbers: which?
    ("6 times 7 is 42.", "42"),                                                    # a short reply
    ("First, 10 - 8 = 2.\nThen she sells a third of them, which takes 3 steps.", None),
    # final-answer markers and normal forms
    ("She has 1,000 - 766 = 234 left.\n#### 234", "234"),
    ("so the total is \\boxed{1{,}234.50} dollars", "1234.5"),
    ("The answer is \\boxed{\\frac{3}{4}}.", "0.75"),
    ("The answer is \\boxed{\\dfrac{2}{6}}", "1/3"),
    ("The answer is $1,234.50.", "1234.5"),
    ("The answer is 12 apples, with 5 left over.", "12"),
    ("Final answer: 45%", "45"),
    ("The temperature drops to \u22125 degrees.", "-5"),
    ("10 - 3 = 7", "7"),
    ("x = 3.000", "3"),
    ("It is 3 x 10^{-2} m.", "0.03"),
    ("There is no number here.", None),
    # GPT-4-1106 on GSM8K: a last sentence that states the result, units and "$" dropped
    ("Fawn has 28 books.", "28"),
    ("The cost of a pen is $1.20 + $0.30 = $1.50.\n\nEach student raised $6,250.", "6250"),
    ("So the total cost is $6.\nTherefore, the cost per serving is $2.00.", "2"),
    ("The total inner volume of all 3 boxes is 72 cubic inches.", "72"),         # after the last "is"
    ("John's average score across the 4 tests is 95.", "95"),
    ("The sum of Mico and Marco's ages in 10 years will be 40 years.", "40"),    # after "will be"
    ("Together, Lily and Amy have 50 + 70 = <<50+70=120>>120 friends.", "120"),   # GSM8K's calculator note
    ("Therefore, there is a 24% chance that Marcus will actually have to turn in his homework tomorrow.", "24"),
    ("So, in 4 weeks, Charisma has spent 34 hours on meditation and yoga practice.", "34"),   # the main clause
    ("Since one box contains exactly 24 smores, they will need 1 box of graham crackers.", "1"),
    ("Therefore, he has 44 souvenir t-shirts, which means he has 44 quilt blocks in total.", "44"),  # one number
    ("Billy will earn $20 more than Sally for 20 hours of work.", "20"),
    # Mixtral-8x7B on MT-Bench: the number that follows "is", qualified; an aside in brackets
    ("Therefore, the probability of rolling a total number that is at least 3 is approximately 0.3056, or 30.56%.",
     "0.3056"),
    ("So, there are 19 integers that satisfy the inequality |x + 5| < 10.", "19"),
    ("6. Therefore, when twice the number is divided by 4, the remainder is 0 (as indicated by the integer \"2\" in "
     "the expression 5k + 2).", "0"),
    # other final-answer formats
    ("6 * 3 = 18 eggs a day.\n\n**18**", "18"),
    ("She sells 16 - 3 - 4 = 9 eggs.\nTotal: $18", "18"),
    ("She sells 9 eggs at $2 each.\n\nThe answer is: 18", "18"),
    ("She sells 9 eggs at $2 each.\nAnswer: $18", "18"),
    ("She sells 9 eggs at $2 each, for \\boxed{18} dollars.\nThat was easy: 2 steps.", "18"),
    # a stray number of the reasoning, a plan, a question, an answer cut off (Mixtral): no answer
    ("Jill has 10 apples.\nLet's find out how many apples she has after 3 days.", None),
    ("A cake takes 4 eggs.\nFirst, we need 2 cups of flour for each cake.", None),
    ("She lays 16 eggs a day.\nHow many eggs does she have left after 3 days?", None),
    ("Sam ran 3 miles on Monday + 3 miles on Wednesday + 3 miles on Friday, which is a total of 3 + 3 +", None),
    ("The heater adds 15 degrees.\nSo now the house is at 40 + 15 = <<40+1", None),
    ("Count his pets.\nHe has 3 cats, 2 dogs and 5 fish.", None),            # several numbers, no single result
    ("Add the two piles.\nSo the sum is 12, and 30 more makes 42.", None),     # which one?
])
def test_number(answer, number):
    assert extract(answer, "number") == number


@pytest.mark.parametrize("answer, kind, value", [
    ('```json\n{"a": {"b": [1.0, {"c": "x"}]}}\n```', "json:a.b", '[1,{"c":"x"}]'),
    ('```json\n{"a": {"b": [1.0, {"c": "x"}]}}\n```', "json:a.b.1.c", '"x"'),
    ('Here it is: {"status": "ok", "count": 2.0} as asked.', "json:count", "2"),
    ('{"b": 1, "a": {"y": true, "x": null}}', "json", '{"a":{"x":null,"y":true},"b":1}'),
    ('{"b": 1}', "json:a", None),
    ('{"items": [1, 2]}', "json:items.5", None),
    ("no JSON at all", "json:a", None),
    ('{"name": "Zo\u00eb"}', "json:name", '"Zo\u00eb"'),
])
def test_json(answer, kind, value):
    assert extract(answer, kind) == value


@pytest.mark.parametrize("answer, text", [
    ("The answer is Paris.", "paris"),
    ("  PARIS  ", "paris"),
    ("**Final answer:** The Eiffel Tower", "eiffel tower"),
    ("Randy", "randy"),
    ("A", "a"),
    ("The answer is \\boxed{\\text{George Washington}}", "george washington"),
    (MBPP_ANSWER, None),                      # code: not compared as text
    ("word " * 40, None),                     # long free text: cannot judge
    ("...", None),
    # a final assertion: read as output predictions read it (one reader, classifiers.extract_output)
    ("assert f('a==b') == 'x'", "'x'"),
    ("assert f() == {'b': 1, 'a': 2}", "{'a': 2, 'b': 1}"),     # == ignores a dict's order
    ("`assert f(2) == [1,2]`", "[1, 2]"),
    ("assert f(1) == Some Words", "some words"),               # no literal: normalised text
])
def test_text(answer, text):
    assert extract(answer, "text") == text


CRUX_PHIND = ("Based on the given Python code, which may contain errors, complete the assert statement with the "
              "output when executing the code on the given test case. Do NOT output any extra information, even if "
              "the function is incorrect or incomplete. Output \"# done\" after the assertion.\n\ndef f(n):\n    "
              "return n\nassert f(17) == 17 # done\n\ndef f(text):\n    return text.upper()\nassert f('ua6hajq') ==")
CRUX_INPUT = ("You will be given a function f and an output in the form f(??) == output. Find any input such that "
              "executing f on the input leads to the given output.\n\n[PYTHON]\ndef f(x):\n    return x + 1\n"
              "assert f(??) == 17\n[/PYTHON]")


@pytest.mark.parametrize("answer, value", [
    # CodeLlama-7B's bare literals on CRUXEval (scored by running the assertion): case and punctuation count
    ("'o=9,h=6,l=4'", "'o=9,h=6,l=4'"),
    ('"o=9,h=6,l=4"', "'o=9,h=6,l=4'"),
    ('"UA6HAJQ"', "'UA6HAJQ'"),
    ("[1, 2]", "[1, 2]"),
    ("True", "True"),
    ("{ 1: 'A1', 2: 'A2', 3: 'A3' }", "{1: 'A1', 2: 'A2', 3: 'A3'}"),
    ("{3: 'A3', 1: 'A1', 2: 'A2'}", "{1: 'A1', 2: 'A2', 3: 'A3'}"),       # == ignores a dict's order
    ("'\"Leap and the net will appear!' + str(123)", None),              # an expression, not a literal
    # the benchmark's answer formats: the assertion, in [ANSWER] tags, a fenced block, a "# done" comment
    ("[ANSWER]\nassert f('hi') == 'bhihia'\n[/ANSWER]", "'bhihia'"),
    ("```python\nassert f([1, 2, 3]) == [2, 6]\n```", "[2, 6]"),
    ("assert f('ua6hajq') == 'UA6HAJQ' # done", "'UA6HAJQ'"),
    ("assert f('a==b') == 'x'", "'x'"),
    ("[ANSWER]'UA6HAJQ'[/ANSWER]", "'UA6HAJQ'"),
    # a stated output after reasoning; reasoning with no stated output states none
    ("The function upper-cases its argument.\nThe output is 'UA6HAJQ'.", "'UA6HAJQ'"),
    ("It doubles the odd numbers.\nSo the function returns [2, 6]", "[2, 6]"),
    ("1. The function is called with text = 'ua6hajq'.\n2. It upper-cases each letter of the text.", None),
])
def test_output(answer, value):
    assert extract(answer, "auto", CRUXEVAL) == value
    assert extract(answer, "text", CRUX_PHIND) == value


@pytest.mark.parametrize("prompt, kind", [
    (MMLU_PRO, "choice"), (ARC, "choice"), (WINOGRANDE, "choice"), (MBPP, "code"), (HUMANEVAL, "code"),
    (GSM8K, "number"), ("What is 12 * 7?", "number"), ("Calculate the area of a 3 m by 4 m room.", "number"),
    (NQ, "text"), ("What is the capital of France?", "text"), (None, "text"), ("", "text"),
    # predicting what given code outputs asks for a value, not a program
    (CRUXEVAL, "text"), ("What is the output of this code?\n```python\nprint(sum(range(4)))\n```", "text"),
    (CRUX_PHIND, "text"), (CRUX_INPUT, "code"),
    ("Write a function that doubles odd numbers.\nYour code should pass: assert f([1]) == [2]", "code"),
    # GSM8K word problems that name the quantity instead of asking "how many / how much"
    (GSM8K_SALARY, "number"), (GSM8K_PRICE, "number"), (GSM8K_TALL, "number"),
    ("Tom earns $20 an hour for 8 hours. Find his total pay.", "number"),
    ("A bus traveled 280 kilometers from 3:00 p.m. to 7:00 p.m. What was the average speed of the bus?", "number"),
    # open chat and reading passages stay text: no digits, or the quantity question is not the prompt's last
    ("What is the average salary of a nurse in Canada?", "text"),
    (MT_BENCH_BLOG, "text"), (PASSAGE, "text"),
])
def test_prompt_kind(prompt, kind):
    assert prompt_kind(prompt) == kind
    assert answer_kind(prompt) == ("text" if kind == "code" else kind)


def test_auto_follows_the_prompt():
    assert extract("The answer is (E).", "auto", MMLU_PRO) == "E"
    assert extract("They have 9 llamas.\n#### 9", "auto", GSM8K) == "9"
    assert extract("October 23, 2016", "auto", NQ) == "october 23 2016"
    assert extract(MBPP_ANSWER, "auto", MBPP) is None


@pytest.mark.parametrize("a, b, kind, prompt, verdict", [
    ("The answer is (E).", "the closest option is:\n\\[\n\\boxed{E}\n\\]", "auto", MMLU_PRO, True),
    ("The answer is (E).", "The answer is (A).", "auto", MMLU_PRO, False),
    ("The answer is (E).", "I cannot provide a definitive answer.", "auto", MMLU_PRO, None),
    ("Randy", "A", "choice", WINOGRANDE, True),
    ("#### 0.5", "So she keeps \\boxed{\\frac{1}{2}} of it.", "auto", GSM8K, True),
    ("The answer is 1,000.", "1000.00", "number", None, True),
    ("#### 9", "#### 10", "number", None, False),
    ('{"x": 1, "y": 2}', '```json\n{"y": 2.0, "x": 1}\n```', "json", None, True),
    ('{"x": 1}', '{"x": 2}', "json:x", None, False),
    ("The answer is Paris.", "paris", "text", None, True),
    (MBPP_ANSWER, MBPP_ANSWER, "auto", MBPP, None),
    # code-output prediction: the final assertion's value, as a Python literal
    ("1 is odd: 2; 3 is odd: 6.\n[ANSWER]\nassert f([1, 2, 3]) == [2, 6]\n[/ANSWER]",
     "```python\nassert f([1, 2, 3]) == [2,6]\n```", "auto", CRUXEVAL, True),
    ("[ANSWER]assert f([1, 2, 3]) == [2, 6][/ANSWER]", "[ANSWER]assert f([1, 2, 3]) == [2, 4, 6][/ANSWER]",
     "auto", CRUXEVAL, False),
    ("assert f('ab') == 'ba'", 'The function reverses it.\nassert f("ab") == "ba"', "auto", CRUXEVAL, True),
    ('"UA6HAJQ"', "'ua6hajq'", "auto", CRUXEVAL, False),
    ("{3: 'A3', 1: 'A1'}", "[ANSWER]assert f(3) == {1: 'A1', 3: 'A3'}[/ANSWER]", "auto", CRUXEVAL, True),
    ("It upper-cases the text.", "'UA6HAJQ'", "auto", CRUXEVAL, None),
])
def test_agree(a, b, kind, prompt, verdict):
    assert agree(a, b, kind, prompt) is verdict
    assert agree(b, a, kind, prompt) is verdict


@pytest.mark.parametrize("kind", ["letters", "json:", "choice:a", "number:x", ""])
def test_unknown_kinds_are_refused(kind):
    with pytest.raises(ValueError, match="unknown answer kind"):
        parse_kind(kind)
    with pytest.raises(ValueError):
        extract("The answer is (A).", kind)


_FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,\n0123456789", max_size=200)
_STATEMENTS = ("The answer is ({}).", "the answer is {}", "Answer: {}", "The answer is: **({})**", "answer: ({})")


@given(_FILLER, st.sampled_from("ABCDEFGHIJ"), st.sampled_from(_STATEMENTS))
def test_a_stated_letter_is_the_one_rules_extract(filler, letter, statement):
    """Where the rules' extraction (the answer checker's) finds the letter, this one finds the same."""
    answer = filler + " " + statement.format(letter)
    assert extract_choice(answer) == letter == rules.extract_choice(answer)


@given(st.integers(-10**12, 10**12), st.integers(0, 6))
def test_decimal_forms_agree(integer, places):
    """"1234.5", "1,234.50" and "1234.500" are one number."""
    sign = "-" if integer < 0 else ""
    whole, frac = divmod(abs(integer), 10 ** places)
    decimals = f".{frac:0{places}d}" if places else ""
    plain, grouped = f"{sign}{whole}{decimals}", f"{sign}{whole:,}{decimals}"
    padded = plain + ("0" if places else ".0")
    assert extract(f"The answer is {plain}", "number") == canonical_number(Fraction(integer, 10 ** places))
    assert agree(f"#### {grouped}", f"The answer is {padded} units.", "number") is True


_KINDS = st.sampled_from(["auto", "choice", "number", "text", "json", "json:a.0"])
_PROMPTS = st.sampled_from([None, MMLU_PRO, ARC, GSM8K, NQ, MBPP, CRUXEVAL, CRUX_PHIND])


@given(st.text(max_size=400), _KINDS, _PROMPTS)
def test_extract_returns_a_nonempty_string_or_none(text, kind, prompt):
    found = extract(text, kind, prompt)
    assert found is None or (isinstance(found, str) and found)


_ANSWERS = st.sampled_from(["The answer is (A).", "Answer: B", "#### 1,000", "\\boxed{1000}", "It is 3/4.",
                            '{"a": [1.0]}', "Paris", "", "I cannot answer.", "A"])


@given(_ANSWERS, _ANSWERS, _KINDS, _PROMPTS)
def test_agreement_is_symmetric_and_none_only_without_both_answers(a, b, kind, prompt):
    verdict = agree(a, b, kind, prompt)
    assert verdict is agree(b, a, kind, prompt)
    both = extract(a, kind, prompt) is not None and extract(b, kind, prompt) is not None
    assert (verdict is None) is not both


@given(st.fractions(max_denominator=1000))
def test_canonical_number_reads_back(value):
    assert canonical_number(Fraction(canonical_number(value))) == canonical_number(value)
    assert Fraction(canonical_number(value)) == value


def test_agreement_with_mmlu_pro_scorer(data_root):
    """The choice extractor gives the letter MMLU-Pro's scorer gave (answers.parquet) on >= 98% of the
    responses where the scorer found one (measured: 98.3% of 38,839; per model >= 96%: Gemini's
    letters came from the scorer's last fallback, any lone capital, so "I cannot ..." reads "I"); and
    where the scorer of DeepSeek-V2's answers found none (the benchmark scored them 0), it reads a
    letter in at most 2% of the texts (measured: 172 of 10,649, explicit statements such as
    "Answer: B. 44 g"; `python benchmarks/bench_extract.py`)."""
    import pyarrow.parquet as pq

    folder = data_root / "mmlu_pro"
    prompts = pq.read_table(folder / "prompts.parquet", columns=["prompt_id", "prompt"]).to_pydict()
    prompt_of = dict(zip(prompts["prompt_id"], prompts["prompt"]))
    letters = pq.read_table(folder / "answers.parquet").to_pydict()
    scorer = {(p, m): a for p, m, a in zip(letters["prompt_id"], letters["model"], letters["answer"])}
    responses = pq.read_table(folder / "responses.parquet").to_pydict()
    same: dict[str, list[bool]] = {}
    unread_v2: list[bool] = []
    for pid, model, text in zip(responses["prompt_id"], responses["model"], responses["response"]):
        letter, ours = scorer.get((pid, model), "?"), extract(text, "choice", prompt_of[pid])
        if letter not in (None, "?"):
            same.setdefault(model, []).append(ours == letter)
        elif letter is None and model.startswith("DeepSeek-V2-Chat"):
            unread_v2.append(ours is not None)
    rates = {m: sum(v) / len(v) for m, v in same.items()}
    overall = sum(map(sum, same.values())) / sum(map(len, same.values()))
    assert len(same) == 4 and sum(map(len, same.values())) > 38_000
    assert overall >= 0.98, (overall, rates)
    assert min(rates.values()) >= 0.96, rates
    v2_texts = sum(m.startswith("DeepSeek-V2-Chat") for m in responses["model"])
    assert sum(unread_v2) <= 0.02 * v2_texts and len(unread_v2) > 150, (sum(unread_v2), v2_texts)


_SUBJECTS = st.sampled_from(["Fawn", "Jenny", "The farmer", "Each student", "Together, they"])
_RESULT_VERBS = st.sampled_from(["has", "will have", "needs", "raised", "leaves with", "is left with"])
_UNITS = st.sampled_from(["books", "quarters", "cubic inches", "dollars", "eggs", ""])


@given(_SUBJECTS, _RESULT_VERBS, st.integers(0, 10**7), _UNITS, st.lists(st.integers(0, 999), max_size=4))
def test_a_stated_result_is_read_after_any_reasoning(subject, verb, n, unit, steps):
    """The one number of a concluding statement is the answer, whatever numbers the reasoning above holds."""
    reasoning = "\n".join(f"Step: {a} + 1 = {a + 1} items." for a in steps)
    answer = f"{reasoning}\n{subject} {verb} {n:,} {unit}".rstrip() + "."
    assert extract(answer, "number") == str(n)


_PLANS = st.sampled_from(["We can solve this in {} steps.", "Let's check the {} boxes.", "First, we need {} cups.",
                          "Then she sells a third of them, which takes {} steps.", "How many are left after {} days?"])


@given(_PLANS, st.integers(0, 999), st.integers(0, 999))
def test_a_plan_or_a_question_states_no_result(plan, n, m):
    assert extract(f"Jill had {m} llamas.\n" + plan.format(n), "number") is None


_LITERALS = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                         | st.dictionaries(st.integers() | st.text(max_size=5), inner, max_size=4), max_leaves=10)


@given(_LITERALS, st.sampled_from(["{v}", "[ANSWER]\nassert f(1) == {v}\n[/ANSWER]", "```python\nassert f(1) == {v}\n```",
                                   "[ANSWER]{v}[/ANSWER]", "It works step by step.\nassert f('x') == {v} # done"]))
def test_an_output_literal_reads_back_in_every_answer_format(value, form):
    from classifiers.extract_output import canonical_repr
    assert extract(form.format(v=repr(value)), "auto", CRUXEVAL) == canonical_repr(value)
