"""The trade-off figure: points, drawing primitives, small multiples."""
