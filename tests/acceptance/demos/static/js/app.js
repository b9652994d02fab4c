document.getElementById("out").textContent = "6 x 7 = " + 6 * 7;
