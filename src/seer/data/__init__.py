"""VIE data: the dataset file format (`vie`) and building the training and evaluation sets (`build`)."""

from seer.data.vie import ValidationReport, VIEItem, load_vie, summary_table, validate_vie, write_vie

__all__ = ["VIEItem", "ValidationReport", "load_vie", "summary_table", "validate_vie", "write_vie"]
