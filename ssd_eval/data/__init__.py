"""Data: the COCO ground truth, the image selection and the label-to-category table."""
