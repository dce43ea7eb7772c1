"""graph_class_consistency against a hand computation on a tiny 1-D example."""
import pytest
import torch

from tg_cnn2gnn.diagnostics import graph_class_consistency
from tg_cnn2gnn.nn import GraphStudent, InGNN

torch.set_num_threads(1)

# Five training points on a line, labels 0 0 1 1 1; the bank is all of them.
TRAIN_X = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
TRAIN_Y = torch.tensor([0, 0, 1, 1, 1])
# Queries 0.4 (class 0), 1.6 (class 1).
X = torch.tensor([[0.4], [1.6]])
Y = torch.tensor([0, 1])


def model(s=2):
    torch.manual_seed(0)
    return InGNN(GraphStudent(1, 4, 2), s=s)          # learned distance: -x_q * x_b


def test_equals_hand_computation():
    out = graph_class_consistency(model(), X, Y, TRAIN_X, TRAIN_Y, bank=torch.arange(5))
    # learned (inner product): the two largest bank values 11, 10 (class 1), third 2.
    #   query 0.4 (class 0): d = -4.4, -4.0, (-0.8): share 0, weighted 0
    #   query 1.6 (class 1): d = -17.6, -16.0, (-3.2): share 1, weighted 1
    assert out["learned"] == pytest.approx(0.5)
    assert out["learned_weighted"] == pytest.approx(0.5)
    # raw (squared Euclidean):
    #   query 0.4: 0 (0.16, class 0), 1 (0.36, class 0), third 2 (2.56): share 1, weighted 1
    #   query 1.6: 2 (0.16, class 1), 1 (0.36, class 0), third 0 (2.56):
    #     share 1/2; Eq. 3 weight of point 2 = (2.56-0.16)/((2.56-0.16)+(2.56-0.36)) = 2.4/4.6
    assert out["raw"] == pytest.approx((1 + 0.5) / 2)
    assert out["raw_weighted"] == pytest.approx((1 + 2.4 / 4.6) / 2, abs=1e-6)
    # chance: queries 1/2, 1/2; bank 2/5, 3/5
    assert out["chance"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.6)
    assert (out["s"], out["bank_size"], out["num_queries"]) == (2, 5, 2)


def test_chunking_and_bank_draw():
    m = model()
    a = graph_class_consistency(m, X, Y, TRAIN_X, TRAIN_Y, bank=torch.arange(5))
    b = graph_class_consistency(m, X, Y, TRAIN_X, TRAIN_Y, bank=torch.arange(5), chunk_size=1)
    assert a == b
    c = graph_class_consistency(m, X, Y, TRAIN_X, TRAIN_Y, bank_size=5)   # the whole set, drawn
    assert c == a
    assert m.training                                                      # mode restored


def test_s_capped_at_bank():
    out = graph_class_consistency(model(s=50), X, Y, TRAIN_X, TRAIN_Y, bank=torch.tensor([0, 1, 3]))
    assert out["s"] == 2


def test_bad_arguments():
    m = model()
    with pytest.raises(ValueError, match="y must be"):
        graph_class_consistency(m, X, Y[:1], TRAIN_X, TRAIN_Y)
    with pytest.raises(TypeError, match="integer"):
        graph_class_consistency(m, X, Y.float(), TRAIN_X, TRAIN_Y)
    with pytest.raises(ValueError, match="duplicate"):
        graph_class_consistency(m, X, Y, TRAIN_X, TRAIN_Y, bank=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="bank_size"):
        graph_class_consistency(m, X, Y, TRAIN_X, TRAIN_Y, bank_size=6)
    with pytest.raises(ValueError, match="same F"):
        graph_class_consistency(m, torch.zeros(2, 2), Y, TRAIN_X, TRAIN_Y)
