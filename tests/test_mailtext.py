"""What the classifier reads of an email (router/core/mailtext.py): the customer's own words."""

from __future__ import annotations

import pytest

from router.core.mailtext import classification_text, html_to_text, strip_reply

NEW = "Kde je moje objednávka 2024001234?"


@pytest.mark.parametrize(
    "attribution",
    [
        "On Tue, Mar 12, 2024 at 10:00 AM Eshop <podpora@eshop.example> wrote:",
        "Dne 12.03.2024 v 10:15 Eshop podpora napsal(a):",
        "út 12. 3. 2024 v 10:00 odesílatel Eshop <podpora@eshop.example> napsal:",
        "Eshop podpora napsal(a):",
        "W dniu 12.03.2024 o 10:00, Sklep pisze:",
        "wt., 12 mar 2024 o 10:00 Sklep <sklep@eshop.example> napisał(a):",
        "Am Di., 12. März 2024 um 10:00 Uhr schrieb Eshop <support@eshop.example>:",
        "ut 12. 3. 2024 o 10:00 Eshop <podpora@eshop.example> napísal(a):",
        "Dňa 12. 3. 2024 o 10:00 Eshop napísal(a):",
        "V tor., 12. mar. 2024 ob 10:00 je oseba Eshop <podpora@eshop.example> napisala:",
        "12.03.2024 10:00, Иван Петров пишет:",
        "вт, 12 мар. 2024 г. в 10:00, Магазин <shop@eshop.example>:",
        "Магазин написал(а):",
    ],
)
def test_a_reply_attribution_and_its_quote_are_dropped(attribution: str) -> None:
    body = f"{NEW}\n\n{attribution}\n> Děkujeme za objednávku.\n> Odešleme ji zítra.\n"
    assert strip_reply(body) == NEW


@pytest.mark.parametrize(
    "attribution",
    [
        "On Tue, Mar 12, 2024 at 10:00 AM Eshop <podpora@eshop.example> wrote:",
        "Dne 12.03.2024 v 10:15 Eshop podpora napsal(a):",
        "Am Di., 12. März 2024 um 10:00 Uhr schrieb Eshop <support@eshop.example>:",
    ],
)
def test_a_quote_without_markers_below_an_attribution_is_dropped_whole(attribution: str) -> None:
    body = f"{NEW}\n\n{attribution}\nDěkujeme za objednávku.\nVáš eshop\n"
    assert strip_reply(body) == NEW


def test_an_attribution_wrapped_over_two_lines_is_recognised() -> None:
    body = (
        f"{NEW}\n\nOn Tue, Mar 12, 2024 at 10:00 AM Eshop podpora <\n"
        "podpora@eshop.example> wrote:\n\n> Děkujeme.\n"
    )
    assert strip_reply(body) == NEW


def test_bottom_posting_keeps_every_answer_between_the_quotes() -> None:
    body = (
        "On Tue, Mar 12, 2024 at 10:00 AM Eshop <podpora@eshop.example> wrote:\n"
        "> Kdy se Vám hodí doručení?\n"
        "Ve čtvrtek odpoledne.\n"
        "> A na jakou adresu?\n"
        "Šumavská 12, Brno.\n"
        "-- \n"
        "Petra\n"
    )
    assert strip_reply(body) == "Ve čtvrtek odpoledne.\nŠumavská 12, Brno."


def test_a_quote_mid_message_keeps_the_text_before_and_after_it() -> None:
    body = "Dobrý den,\n> Vaše objednávka byla odeslána.\nale nic nedorazilo.\n"
    assert strip_reply(body) == "Dobrý den,\nale nic nedorazilo."


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "-----Původní zpráva-----",
        "----- Původní zpráva -----",
        "---------- Původní e-mail ----------",
        "-----Pôvodná správa-----",
        "-----Ursprüngliche Nachricht-----",
        "-----Oryginalna wiadomość-----",
        "-----Izvirno sporočilo-----",
        "-----Исходное сообщение-----",
        "________________________________",
    ],
)
def test_an_outlook_original_message_block_is_dropped(separator: str) -> None:
    body = f"{NEW}\n\n{separator}\nFrom: Eshop\nSent: Monday\nSubject: Objednávka\n\nStarý text"
    assert strip_reply(body) == NEW


@pytest.mark.parametrize(
    ("from_line", "sent_line"),
    [
        ("From: Eshop <podpora@eshop.example>", "Sent: Monday, March 11, 2024 4:20 PM"),
        ("Od: Eshop <podpora@eshop.example>", "Odesláno: pondělí 11. března 2024 16:20"),
        ("Von: Eshop <support@eshop.example>", "Gesendet: Montag, 11. März 2024 16:20"),
        ("Od: Sklep <sklep@eshop.example>", "Wysłano: poniedziałek, 11 marca 2024 16:20"),
        ("От: Магазин <shop@eshop.example>", "Отправлено: 11 марта 2024 г. 16:20"),
        ("**From:** Eshop", "**Date:** Monday"),
    ],
)
def test_an_outlook_header_block_without_separator_is_dropped(
    from_line: str, sent_line: str
) -> None:
    body = f"{NEW}\n\n{from_line}\n{sent_line}\nTo: zákazník\n\nStarý text"
    assert strip_reply(body) == NEW


def test_a_from_line_of_the_customers_own_is_kept() -> None:
    body = "Dobrý den,\nFrom: Praha do Brna to trvá týden.\nDěkuji za info o zásilce."
    assert strip_reply(body) == body


@pytest.mark.parametrize(
    "closing",
    [
        "S pozdravem",
        "S pozdravem,",
        "S pozdravem Jan Novák",
        "Se srdečným pozdravem",
        "S pozdravom",
        "Best regards,",
        "Kind regards",
        "Regards",
        "Mit freundlichen Grüßen",
        "Mit freundlichen Gruessen",
        "Viele Grüße",
        "MfG",
        "Pozdrawiam",
        "Pozdrawiam serdecznie,",
        "Z poważaniem",
        "Lep pozdrav",
        "S spoštovanjem",
        "LP",
        "С уважением,",
        "С наилучшими пожеланиями",
    ],
)
def test_a_signature_after_a_closing_is_dropped(closing: str) -> None:
    body = f"{NEW}\n\n{closing}\nJan Novák\nNovák s.r.o.\ntel. +420 777 123 456\n"
    assert strip_reply(body) == NEW


def test_the_signature_delimiter_drops_what_follows() -> None:
    assert strip_reply(f"{NEW}\n-- \nJan Novák\nwww.novak.example") == NEW
    assert strip_reply(f"{NEW}\n--\nJan") == NEW


@pytest.mark.parametrize(
    "device",
    [
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Sent from Outlook for Android",
        "Get Outlook for iOS",
        "Odesláno z iPhonu",
        "Odesláno z mého iPhonu",
        "Odoslané z iPhonu",
        "Wysłane z iPhone'a",
        "Von meinem iPhone gesendet",
        "Gesendet von meinem iPhone",
        "Poslano iz iPhona",
        "Отправлено с iPhone",
    ],
)
def test_a_device_line_is_dropped(device: str) -> None:
    body = f"{NEW}\n\n{device}\n\nOn Tue, Mar 12, 2024 Eshop <podpora@eshop.example> wrote:\n> x"
    assert strip_reply(body) == NEW


@pytest.mark.parametrize(
    "disclaimer",
    [
        "This e-mail and any attachments are confidential and intended solely for the addressee.",
        "CONFIDENTIALITY NOTICE: The information in this email is privileged.",
        "Tento e-mail je důvěrný a je určen pouze pro adresáta.",
        "Táto správa je dôverná a je určená len pre adresáta.",
        "Diese E-Mail enthält vertrauliche Informationen.",
        "Ta wiadomość jest poufna i przeznaczona wyłącznie dla adresata.",
        "To sporočilo je zaupno.",
        "Это сообщение конфиденциально и предназначено только для адресата.",
    ],
)
def test_a_disclaimer_is_dropped(disclaimer: str) -> None:
    assert strip_reply(f"{NEW}\n\n{disclaimer}\nMore legal text.") == NEW


def test_a_customer_sentence_about_this_email_is_not_a_disclaimer() -> None:
    body = "This email is about my order 2024001234: it never arrived."
    assert strip_reply(body) == body


def test_a_bare_thanks_before_a_name_is_a_signature_but_thanks_for_something_is_not() -> None:
    assert strip_reply(f"{NEW}\n\nDěkuji\nJan") == NEW
    assert strip_reply(f"{NEW}\n\nThanks!\nJane Doe") == NEW
    kept = f"{NEW}\nDěkuji za rychlé vrácení peněz.\nJan"
    assert strip_reply(kept) == kept


def test_thanks_followed_by_more_of_the_message_is_kept() -> None:
    body = "Děkuji\n\nJeště jedna věc: potřebuji fakturu.\nA taky dodací list.\nA záruční list.\n"
    body += "A návod.\nA ještě něco.\nJan"
    assert strip_reply(body).startswith("Děkuji")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Kde je moje objednávka", "Kde je moje objednávka"),
        ("RE: AW: Fwd: Rechnung", "Rechnung"),
        ("Odp: Zamówienie", "Zamówienie"),
        ("Re[2]: Ответ: Заказ", "Заказ"),
        ("  Reklamace\t výrobku ", "Reklamace výrobku"),
    ],
)
def test_reply_prefixes_leave_the_subject(subject: str, expected: str) -> None:
    assert classification_text(subject, "") == expected


def test_classification_text_is_subject_then_the_new_text() -> None:
    body = f"{NEW}\n\nS pozdravem\nJan\n\nDne 12.03.2024 Eshop napsal(a):\n> Objednávka odeslána"
    assert classification_text("Re: Objednávka", body) == f"Objednávka\n\n{NEW}"
    assert classification_text("", "\n\n") == ""


def test_html_becomes_text_with_paragraphs_lists_and_quotes() -> None:
    html = (
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<p>Dobr&yacute;&nbsp;den,</p><div>jak <b>nastav&iacute;m</b><br>Bluetooth?</div>"
        "<ul><li>model XM-500</li><li>firmware 1.2</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr></table>"
        '<div class="gmail_quote">On Mon, Eshop &lt;podpora@eshop.example&gt; wrote:<br>'
        "<blockquote>Star&yacute; text"
        "<blockquote>Je&scaron;t&#283; star&scaron;&iacute;</blockquote>"
        "</blockquote></div><script>var x = 1;</script></body></html>"
    )
    assert html_to_text(html) == (
        "Dobrý den,\n"
        "jak nastavím\n"
        "Bluetooth?\n"
        "- model XM-500\n"
        "- firmware 1.2\n"
        "a b\n"
        "\n"
        "On Mon, Eshop <podpora@eshop.example> wrote:\n"
        "\n"
        "> Starý text\n"
        "> > Ještě starší"
    )
    assert strip_reply(html_to_text(html)) == (
        "Dobrý den,\njak nastavím\nBluetooth?\n- model XM-500\n- firmware 1.2\na b"
    )


def test_html_pre_keeps_its_lines() -> None:
    assert html_to_text("<pre>a  b\nc</pre>after") == "a  b\nc\nafter"
