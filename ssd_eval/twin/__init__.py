"""The architecture twin of SSD-ResNet34 and generated data with known answers."""
