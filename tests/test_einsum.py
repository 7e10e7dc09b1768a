"""Einsum equations (attention, projections, transposes, sums, diagonals,
outer products, ellipses, three operands) against the reference in both
storage modes."""
from __future__ import annotations

import pytest
from onnx import helper

from test_gather import check, rand

CASES = {
    "bhid,bhjd->bhij": [(2, 3, 5, 4), (2, 3, 7, 4)],
    "bhij,bhjd->bhid": [(2, 3, 5, 7), (2, 3, 7, 4)],
    "bsd,df->bsf": [(2, 13, 5), (5, 3)],
    "ij->ji": [(5, 13)],
    "bij->b": [(3, 5, 7)],
    "ii->i": [(7, 7)],
    "ii": [(5, 5)],
    "i,j->ij": [(5,), (13,)],
    "i,i->": [(13,), (13,)],
    "...ij,...jk->...ik": [(2, 3, 5, 4), (3, 4, 6)],
    "ij,jk,kl->il": [(3, 5), (5, 7), (7, 2)],
    "abc,cd->ad": [(3, 4, 5), (5, 2)],
}


@pytest.mark.parametrize("equation", list(CASES))
def test_einsum(device, precision, equation):
    names = [f"x{i}" for i in range(len(CASES[equation]))]
    # positive, so that sums (traces) cannot cancel below fp16's resolution
    feeds = {n: abs(rand(*s)) + 0.1 for n, s in zip(names, CASES[equation])}
    check(device, precision, [helper.make_node("Einsum", names, ["y"], equation=equation)],
          feeds, opset=12)


def test_einsum_constant_operand(device, precision):
    check(device, precision, [helper.make_node("Einsum", ["x", "w"], ["y"],
                                               equation="btd,hd->bth")],
          {"x": rand(2, 7, 5)}, {"w": rand(3, 5)}, opset=12)
