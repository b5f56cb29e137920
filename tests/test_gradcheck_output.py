"""``python -m jaxbp.gradcheck``'s table keeps its columns aligned (issue #28 item 22): the
masked specs' longer names pushed their numbers out of line."""

from jaxbp import gradcheck


def test_masked_rows_line_up_with_the_header(capsys, monkeypatch):
    # The table's layout is under test, not the gradients (tests/test_backprop.py): no JAX work.
    monkeypatch.setattr(gradcheck, "compare", lambda *args, **kwargs: [(0, 1e-18, 2e-16)])
    assert gradcheck.main(["--sizes", "2,8,8,8,1", "--activation", "sigmoid", "--output", "sigmoid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [line for line in lines[1:] if "e-" in line and "specs" not in line]
    assert any("masked to" in line for line in table) and any("masked" not in line for line in table)
    header_end = lines[0].index("max rel err") + len("max rel err")
    assert all(len(line) == header_end for line in table), "\n".join([lines[0], *table])
