from vggnet.training.metrics import write_csv


def test_metrics_csv_has_the_columns_in_order(tmp_path):
    path = write_csv([{"epoch": 1, "step": 10, "lr": 0.1, "train_loss": 2.0, "extra": 5}], tmp_path / "m.csv")
    header, row = path.read_text().splitlines()
    assert header.startswith("epoch,step,lr,train_loss,train_top1_err") and row.startswith("1,10,0.1,2.0,")
