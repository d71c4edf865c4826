"""Reading campaigns back: the one trials table (`table`), comparisons (`compare`), a trial's lineage (`trace`)
and the HTML report (`html_report`)."""
