"""Datasets: shapes, encodings, splits and user files."""

import numpy as np
import pandas as pd
import pytest

from jaxbp import config, data

# name -> (rows, features, outputs under mse, classes under ce)
SHAPES = {
    "xor": (4, 2, 1, 2), "parity": (8, 3, 1, 2), "moons": (200, 2, 1, 2),
    "circles": (200, 2, 1, 2), "spirals": (200, 2, 1, 2), "digits": (1797, 64, 10, 10),
    "iris": (150, 4, 3, 3), "breast_cancer": (569, 30, 1, 2), "wine": (178, 13, 3, 3),
}


@pytest.mark.parametrize("name", SHAPES)
def test_every_dataset_loads_with_the_right_shapes(name):
    rows, features, outputs, classes = SHAPES[name]
    ds = data.load(data.option(name, test_fraction=0.0), loss="mse")
    assert ds.x_train.shape == (rows, features) and ds.y_train.shape == (rows, outputs)
    assert ds.classes and set(np.unique(ds.y_train)) <= {0.0, 1.0}
    ce = data.load(data.option(name, test_fraction=0.0), loss="ce")
    assert ce.y_train.shape == (rows, classes)
    np.testing.assert_array_equal(ce.y_train.sum(axis=1), 1.0)


def test_xor_is_the_articles_truth_table():
    ds = data.load(data.option("xor"))
    np.testing.assert_array_equal(ds.y_train[:, 0], np.logical_xor(ds.x_train[:, 0], ds.x_train[:, 1]))


def test_parity_counts_bits():
    ds = data.load(data.option("parity", bits=5))
    assert ds.x_train.shape == (32, 5)
    np.testing.assert_array_equal(ds.y_train[:, 0], ds.x_train.sum(axis=1) % 2)


def test_split_is_fixed_by_data_seed_and_standardised_on_train_only():
    cfg = data.option("wine", test_fraction=0.25, seed=3, standardize=True)
    a, b = data.load(cfg), data.load(cfg)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_test.shape[0] == round(0.25 * 178) and a.x_train.shape[0] == 178 - 44
    np.testing.assert_allclose(a.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.x_train.std(axis=0), 1, atol=1e-12)
    assert np.abs(a.x_test.mean(axis=0)).max() > 1e-3  # test rows are not re-fitted
    other = data.load(data.option("wine", test_fraction=0.25, seed=4, standardize=True))
    assert not np.array_equal(a.x_test, other.x_test)


def test_csv_file_with_named_target(tmp_path):
    path = tmp_path / "points.csv"
    pd.DataFrame({"label": [0, 1, 1, 0, 1], "a": [0., 1, 2, 3, 4], "b": [5., 6, 7, 8, 9]}).to_csv(path, index=False)
    ds = data.load(data.option("file", path=str(path), target="label", standardize=False))
    assert ds.x_train.shape == (5, 2) and ds.classes
    np.testing.assert_array_equal(ds.y_train[:, 0], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(ds.x_train[:, 1], [5, 6, 7, 8, 9])


def test_npz_file_regression_targets(tmp_path):
    path = tmp_path / "reg.npz"
    x = np.linspace(0, 1, 12).reshape(6, 2)
    np.savez(path, x=x, y=x.sum(axis=1) + 0.5)
    ds = data.load(data.option("file", path=str(path), standardize=False))
    assert not ds.classes and ds.y_train.shape == (6, 1)
    np.testing.assert_allclose(ds.y_train[:, 0], x.sum(axis=1) + 0.5)


def test_bad_files_raise_config_errors(tmp_path):
    cases = {"data.path": [str(tmp_path / "absent.csv")], "data.target": []}
    wrong_suffix = tmp_path / "d.txt"
    wrong_suffix.write_text("1,2")
    cases["data.path"].append(str(wrong_suffix))
    for key, paths in cases.items():
        for path in paths:
            with pytest.raises(config.ConfigError) as err:
                data.load(data.option("file", path=path))
            assert err.value.key == key
    csv = tmp_path / "d.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(csv, index=False)
    with pytest.raises(config.ConfigError) as err:
        data.load(data.option("file", path=str(csv), target="missing"))
    assert err.value.key == "data.target"


def test_ce_on_real_targets_is_refused(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, x=np.ones((3, 1)), y=np.array([0.5, 1.5, 2.5]))
    with pytest.raises(config.ConfigError, match="ce needs class targets"):
        data.load(data.option("file", path=str(path)), loss="ce")


def test_a_single_class_is_refused():
    with pytest.raises(config.ConfigError, match="at least two classes"):
        data.encode_targets(np.array([1, 1, 1]), classes=True, loss="mse")


@pytest.mark.parametrize("name,test_fraction,standardize", [
    ("xor", 0.0, False), ("parity", 0.0, False), ("moons", 0.25, True), ("circles", 0.25, True),
    ("spirals", 0.25, True), ("digits", 0.25, True), ("wine", 0.25, True),
])
def test_each_option_owns_its_defaults(name, test_fraction, standardize):
    option = data.option(name)
    assert (option.test_fraction, option.standardize) == (test_fraction, standardize)


def test_an_option_refuses_a_key_it_does_not_have():
    with pytest.raises(TypeError):
        data.option("xor", noise=0.9)
    with pytest.raises(config.ConfigError, match="data.name"):
        data.Moons(name="xor")
