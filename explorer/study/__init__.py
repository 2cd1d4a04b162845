"""The Study tab: a knob x seeds as trials, their points with intervals, live."""
