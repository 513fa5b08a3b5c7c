"""The DOCX reader's tables (spans, header rows, nested tables), text boxes, content controls and
pictures, on WordprocessingML written by hand."""

from __future__ import annotations

from pathlib import Path

from pagemill.documents.office.blocks import Cell, Heading, Image, Paragraph, Table
from pagemill.documents.office.render import page_markdown
from tests.unit.documents.office.docx_helpers import PNG_BYTES, W, make_docx, p, read, rel, tc

# -- tables, text boxes, content controls, pictures ---------------------------------------------------------


def test_table_spans_header_rows_nested_table_and_empty_cells(tmp_path: Path) -> None:
    span_two, restart = '<w:gridSpan w:val="2"/>', '<w:vMerge w:val="restart"/>'
    nested = f"<w:tbl><w:tr>{tc(p('n1'))}{tc(p('n2'))}</w:tr><w:tr>{tc(p('n3'))}{tc(p(''))}</w:tr></w:tbl>"
    body = (
        "<w:tbl><w:tblGrid><w:gridCol/><w:gridCol/><w:gridCol/></w:tblGrid>"
        f"<w:tr><w:trPr><w:tblHeader/></w:trPr>{tc(p('H1'), span_two)}{tc(p('H3'))}</w:tr>"
        f"<w:tr><w:trPr><w:tblHeader/></w:trPr>{tc(p('S1'))}{tc(p('S2'))}{tc(p('S3'))}</w:tr>"
        f"<w:tr>{tc(p('A'), restart)}{tc(p('B'))}{tc(p(''))}</w:tr>"
        f"<w:tr>{tc(p(''), '<w:vMerge/>')}{tc(nested)}{tc(p('C'))}</w:tr>"
        "</w:tbl>"
    )
    page = read(make_docx(tmp_path, body)).pages[0]
    assert page.blocks == [
        Table(
            cells=[
                Cell("H1", 0, 0, col_span=2, header=True),
                Cell("H3", 0, 2, header=True),
                Cell("S1", 1, 0, header=True),
                Cell("S2", 1, 1, header=True),
                Cell("S3", 1, 2, header=True),
                Cell("A", 2, 0, row_span=2),
                Cell("B", 2, 1),
                Cell("", 2, 2),
                Cell("n1 n2\nn3", 3, 1),
                Cell("C", 3, 2),
            ],
            n_rows=4,
            n_cols=3,
            header_rows=2,
        )
    ]
    assert page_markdown(page).splitlines() == [
        "| H1 | H1 | H3 |",
        "| - | - | - |",
        "| S1 | S2 | S3 |",
        "| A | B |  |",
        "| A | n1 n2 n3 | C |",
    ]


def test_text_box_content_control_and_pictures(tmp_path: Path) -> None:
    heading = '<w:pStyle w:val="Heading2"/>'
    textbox = (
        "<w:p><w:r><mc:AlternateContent><mc:Choice Requires='wps'><w:drawing><wp:anchor>"
        "<wp:docPr id='1' name='Text Box 1'/><a:graphic><a:graphicData><wps:wsp><wps:txbx><w:txbxContent>"
        f"{p('Boxed', heading)}{p('Inside')}"
        "</w:txbxContent></wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        "</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent>"
        f"{p('Boxed')}{p('Inside')}</w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r><w:r><w:t>Anchor text</w:t></w:r></w:p>"
    )
    picture = (
        "<w:p><w:r><w:drawing><wp:inline><wp:docPr id='2' name='Picture 2' descr='A blue square'/>"
        "<a:graphic><a:graphicData><pic:pic><pic:nvPicPr><pic:cNvPr id='0' name='blue.png'/></pic:nvPicPr>"
        "<pic:blipFill><a:blip r:embed='rIdImg'/></pic:blipFill></pic:pic></a:graphicData></a:graphic>"
        "</wp:inline></w:drawing></w:r></w:p>"
        "<w:p><w:r><w:drawing><wp:inline><wp:docPr id='3' name='Linked'"
        " descr='A duck&#10;&#10;Description automatically generated'/><a:graphic><a:graphicData><pic:pic>"
        "<pic:blipFill><a:blip r:link='rIdOut'/></pic:blipFill></pic:pic></a:graphicData></a:graphic>"
        "</wp:inline></w:drawing></w:r></w:p>"
        "<w:p><w:r><w:pict><v:shape alt='Old style'><v:imagedata r:id='rIdImg'/></v:shape></w:pict>"
        "</w:r></w:p>"
    )
    control = f"<w:sdt><w:sdtPr/><w:sdtContent>{p('In a control')}</w:sdtContent></w:sdt>"
    styles = (
        f'<w:styles xmlns:w="{W}"><w:style w:type="paragraph" w:styleId="Heading2">'
        '<w:name w:val="heading 2"/></w:style></w:styles>'
    )
    path = make_docx(
        tmp_path,
        textbox + picture + control,
        parts={"word/media/blue.png": PNG_BYTES, "word/styles.xml": styles},
        rels=rel("rIdImg", "image", "media/blue.png")
        + rel("rIdOut", "image", "https://example.com/duck.png", external=True)
        + rel("rIdS", "styles", "styles.xml"),
    )
    result = read(path)
    assert result.pages[0].blocks == [
        Paragraph("Anchor text"),
        Heading("Boxed", 2),
        Paragraph("Inside"),
        Image(ref="word/media/blue.png", alt="A blue square", name="Picture 2"),
        Image(ref=None, alt="", name="Linked"),
        Image(ref="word/media/blue.png", alt="Old style", name=None),
        Paragraph("In a control"),
    ]
    assert result.image_bytes("word/media/blue.png") == PNG_BYTES
